"""Reading a toolbox model's feature pyramid, computing only what is needed.

Two pyramid sources cover the three toolboxes:

* ``'neck'``: the FPN outputs of an mmdet detector (P2, P3, ... in order).
* ``'backbone'``: the stage outputs of a ResNet-family backbone (C2..C5), as
  used by mmseg ``EncoderDecoder`` and mmpretrain ``ImageClassifier``.

The student's pyramid is read with forward hooks while the student computes
its own losses, so its forward is exactly the toolbox's. The teacher's pyramid
is computed per sample, only as far as that sample's selected levels need: a
backbone pyramid runs each stage on the samples whose deepest selected level
is at or below it, an FPN runs its laterals and top-down path (which feed
every level) on every sample and each 3x3 output convolution only on the
samples that selected its level.
"""
from contextlib import ExitStack, contextmanager

import torch
from torch import nn


class _OnRows(nn.Module):
    """An FPN output conv applied to some rows of its input only."""

    def __init__(self, conv, rows):
        super().__init__()
        self.conv, self.rows = conv, rows

    def forward(self, x):
        x = x[self.rows]
        return self.conv(x) if len(self.rows) else x


class Pyramid(list):
    """Captured pyramid levels, shallowest first, plus ``top``: the deepest
    backbone output, the image's global context (C5 of a ResNet)."""
    top = None


class PyramidTap:
    """Access to the feature pyramid of an mmdet, mmseg or mmpretrain model.

    Args:
        model (nn.Module): the toolbox model.
        source (str): ``'neck'``, ``'backbone'`` or ``'auto'`` (the neck of a
            model with an FPN-like neck exposing ``fpn_convs``, else the
            backbone).
        role (str): ``'teacher'`` or ``'student'``, for error messages.
    """

    def __init__(self, model, source='auto', role='model'):
        if source == 'auto':
            neck = getattr(model, 'neck', None)
            source = 'neck' if hasattr(neck, 'fpn_convs') else 'backbone'
        if source not in ('neck', 'backbone'):
            raise ValueError(f"{role}: pyramid source must be 'neck', "
                             f"'backbone' or 'auto', got {source!r}")
        self.model, self.source, self.role = model, source, role
        if source == 'neck':
            if getattr(model, 'neck', None) is None:
                raise ValueError(f"{role} {type(model).__name__} has no neck; "
                                 "use source='backbone'")
            self.stages = None
        else:
            backbone = model.backbone
            if not hasattr(backbone, 'res_layers'):
                raise ValueError(
                    f'{role} backbone {type(backbone).__name__} is not a '
                    'ResNet-family backbone (no res_layers); the backbone '
                    'pyramid needs its stages')
            self.stages = [getattr(backbone, name)
                           for name in backbone.res_layers]

    @contextmanager
    def _hooks(self, modules, on_output):
        with ExitStack() as stack:
            for i, module in enumerate(modules):
                handle = module.register_forward_hook(
                    lambda m, args, out, i=i: on_output(i, args, out))
                stack.callback(handle.remove)
            yield

    @contextmanager
    def capture(self):
        """Collect the pyramid of whatever forward runs inside the block.

        Yields:
            Pyramid: receives the pyramid's feature maps, shallowest first.
        """
        feats = Pyramid()
        if self.stages is None:
            def on_output(i, args, out):
                feats[:] = out
                feats.top = args[0][-1]  # the neck's input: backbone outputs
        else:
            def on_output(i, args, out):
                feats.append(out)
                feats.top = out
        with self._hooks([self.model.neck] if self.stages is None
                         else self.stages, on_output):
            yield feats

    def extract(self, inputs, mask):
        """Compute the pyramid levels each sample selected, and no more.

        Args:
            inputs (Tensor): (N, 3, H, W) preprocessed images.
            mask (Tensor): (N, L) flags, the levels each image needs; every
                row should select at least one level (rows without any still
                pay the shared part of an FPN).

        Returns:
            list[Tensor | None]: for each of the L levels, the features of
            the rows that selected it, in row order (``None`` if none did).
        """
        mask = mask.bool()
        if not mask.any():
            return [None] * mask.shape[1]
        if self.stages is None:
            return self._extract_fpn(inputs, mask)
        # Deepest first, so that each stage runs on a prefix of the batch;
        # stages below every row's deepest level run on an empty batch (an
        # exception to stop the forward would break the FLOP analyser's
        # trace).
        levels = torch.arange(1, mask.shape[1] + 1, device=mask.device)
        depth = (mask * levels).amax(1) - 1
        order = depth.argsort(descending=True, stable=True)
        reach = [int((depth >= i).sum()) for i in range(len(self.stages))]
        outs = [None] * len(self.stages)

        def on_output(i, args, out):
            outs[i] = out

        with ExitStack() as stack:
            for i, stage in enumerate(self.stages):
                handle = stage.register_forward_pre_hook(
                    lambda m, args, i=i: (args[0][:reach[i]], *args[1:]))
                stack.callback(handle.remove)
            stack.enter_context(self._hooks(self.stages, on_output))
            self.model.backbone(inputs[order])  # a neck is not the pyramid
        position = order.argsort()  # row -> its place in the sorted batch
        return [out[position[mask[:, i]]] if mask[:, i].any() else None
                for i, out in enumerate(outs[:mask.shape[1]])]

    def _extract_fpn(self, inputs, mask):
        convs = self.model.neck.fpn_convs
        none = mask.new_zeros(0, dtype=torch.long)
        # Output convs beyond the distilled levels (extra levels) are skipped.
        rows = [mask[:, i].nonzero()[:, 0] if i < mask.shape[1] else none
                for i in range(len(convs))]
        saved = list(convs)
        for i, conv in enumerate(saved):
            convs[i] = _OnRows(conv, rows[i])
        try:
            with self.capture() as feats:
                self.model.extract_feat(inputs)
        finally:
            for i, conv in enumerate(saved):
                convs[i] = conv
        return [feats[i] if len(rows[i]) else None
                for i in range(mask.shape[1])]

    def shapes(self, probe):
        """Channels and strides of every pyramid level for a probe image;
        ``top`` holds the channels of the deepest backbone output."""
        with torch.no_grad(), self.capture() as feats:
            self.model.extract_feat(probe)
        size = probe.shape[-1]
        shapes = Pyramid((f.shape[1], size // f.shape[-1]) for f in feats)
        shapes.top = feats.top.shape[1]
        return shapes
