"""Reading a toolbox model's feature pyramid, and skipping the parts not needed.

Two pyramid sources cover the three toolboxes:

* ``'neck'``: the FPN outputs of an mmdet detector (P2, P3, ... in order).
* ``'backbone'``: the stage outputs of a ResNet-family backbone (C2..C5), as
  used by mmseg ``EncoderDecoder`` and mmpretrain ``ImageClassifier``.

The student's pyramid is read with forward hooks while the student computes
its own losses, so its forward is exactly the toolbox's. The teacher's pyramid
is computed only as far as the selected levels need: a backbone pyramid stops
after the deepest selected stage, an FPN skips the 3x3 output convolutions of
unselected levels (its laterals and top-down path feed every level).
"""
from contextlib import ExitStack, contextmanager

import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn


class _StopForward(Exception):
    """Raised by a hook once every needed stage has been computed."""


class _ExtractFeat(nn.Module):
    """Traceable view of ``model.extract_feat`` for the FLOP analysis."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, inputs):
        return self.model.extract_feat(inputs)


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

    def extract(self, inputs, needed):
        """Compute the pyramid as far as the ``needed`` levels require.

        Args:
            inputs (Tensor): preprocessed images.
            needed (Sequence[bool]): one flag per pyramid level.

        Returns:
            list: feature maps; entries of levels not needed may be ``None``
            or computed without their level-specific work.
        """
        needed = [bool(n) for n in needed]
        if self.stages is None:
            skip = getattr(self.model.neck, 'fpn_convs', [])
            with self._skipping(skip, needed), self.capture() as feats:
                self.model.extract_feat(inputs)
            return list(feats)
        deepest = max(i for i, n in enumerate(needed) if n)
        feats = [None] * len(self.stages)

        def on_output(i, args, out):
            feats[i] = out
            if i == deepest:
                raise _StopForward

        with self._hooks(self.stages[:deepest + 1], on_output):
            try:
                self.model.extract_feat(inputs)
            except _StopForward:
                pass
        return feats

    @staticmethod
    @contextmanager
    def _skipping(convs, needed):
        """Swap the output convs of levels not needed for identities."""
        saved = {i: convs[i] for i, n in enumerate(needed)
                 if not n and i < len(convs)}
        for i in saved:
            convs[i] = nn.Identity()
        try:
            yield
        finally:
            for i, conv in saved.items():
                convs[i] = conv

    def shapes(self, probe):
        """Channels and strides of every pyramid level for a probe image;
        ``top`` holds the channels of the deepest backbone output."""
        with torch.no_grad(), self.capture() as feats:
            self.model.extract_feat(probe)
        size = probe.shape[-1]
        shapes = Pyramid((f.shape[1], size // f.shape[-1]) for f in feats)
        shapes.top = feats.top.shape[1]
        return shapes

    def level_costs(self, probe, num_levels):
        """Teacher FLOPs spent on distillation, split by what needs them.

        A sample's cost for a level mask ``m`` is
        ``any(m) * shared + max_l(m_l * prefix_l) + sum_l(m_l * own_l)``:
        ``shared`` is paid once a sample has any level (the FPN's backbone,
        laterals and top-down path, or the backbone stem), ``prefix_l`` by the
        deepest selected stage of a backbone pyramid, ``own_l`` by each
        selected FPN level's output conv.

        Returns:
            tuple[float, Tensor, Tensor]: shared, prefix and own FLOPs.
        """
        flops = FlopAnalyzer(_ExtractFeat(self.model), (probe, ))
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_module = flops.by_module()
        prefix = torch.zeros(num_levels)
        own = torch.zeros(num_levels)
        if self.stages is None:
            for i in range(min(num_levels, len(self.model.neck.fpn_convs))):
                own[i] = by_module[f'model.neck.fpn_convs.{i}']
            shared = by_module['model.backbone'] + by_module['model.neck'] \
                - own.sum().item()
        else:
            names = self.model.backbone.res_layers
            stage = torch.tensor(
                [float(by_module[f'model.backbone.{n}']) for n in names])
            prefix = stage.cumsum(0)[:num_levels]
            shared = by_module['model.backbone'] - stage.sum().item()
        return float(shared), prefix, own
