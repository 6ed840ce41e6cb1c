"""Meta-Weight-Net (Shu et al., NeurIPS 2019): a small net maps each sample's
loss to its weight in the training loss, learned on a clean meta set.

:class:`MetaWeightNet` is the weighting function; :class:`MetaWeightedModel`
wraps a toolbox classifier or a :class:`PyramidDistiller` and weights its
per-sample losses with it. The bi-level update of the weighting net (a
virtual step of the model, the meta loss of the virtually updated model on
the clean meta set) is :class:`~pyramidkd_mm.engine.MetaWeightHook`'s.
"""
import torch
from mmengine.model import BaseModel, BaseModule
from torch import nn

from ..registry import MODELS
from .distiller import PyramidDistiller


@MODELS.register_module()
class MetaWeightNet(BaseModule):
    """The weighting function: an MLP ``loss -> weight`` (1 -> hidden -> 1,
    ReLU, sigmoid), PyTorch's default initialisation, as MW-Net's reference
    code. It runs in its parameters' dtype (float32) whatever the autocast
    context: fp16 losses are cast up, never the net down.

    Args:
        hidden (int): hidden units (100 in the paper).
    """

    def __init__(self, hidden=100, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.layers = nn.Sequential(
            nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, losses):
        """(N,) per-sample losses -> (N,) weights in (0, 1).

        The losses are inputs, not trained through the weights (the
        reference code feeds ``cost.data``), hence detached.
        """
        with torch.autocast(losses.device.type, enabled=False):
            x = losses.detach().to(self.layers[0].weight.dtype)[:, None]
            return self.layers(x).sigmoid()[:, 0]


@MODELS.register_module()
class MetaWeightedModel(BaseModel):
    """A model whose per-sample training losses are weighted by a
    :class:`MetaWeightNet`; train it with :class:`MetaWeightHook`.

    What is weighted follows from the wrapped model:

    * an mmpretrain ``ImageClassifier`` (a model with ``extract_feat`` and a
      ``ClsHead``-style ``head``): its classification loss per sample, the
      head's own loss module with ``reduction_override='none'``;
    * a :class:`PyramidDistiller`: each sample's distillation loss (the sum
      over its levels), through the distiller's ``weigh_samples`` argument;
      the student's own losses stay unweighted.

    Weighted losses are ``sum(w_i * l_i) / sum(w_i)`` (``normalize``, as
    the reference WRN-28-10 code and Ren et al.'s learning to reweight):
    only the weights relative to the batch count, so the weighting net
    cannot lower the meta loss by scaling every weight (a larger step), and
    a batch's step is as large as CE's. ``normalize=False`` gives the
    reference ResNet-32 code's ``sum(w_i * l_i) / N``; on noisy digits its
    weighting net learned to raise every weight towards 1 instead of
    telling samples apart (README). The mean raw weight is logged as
    ``sample_weight``.
    ``forward`` modes besides the usual ones, for the hook's bi-level step:
    ``'weighted_loss'`` (the training loss with weights that keep their
    graph to the weighting net: the virtual step) and ``'meta_loss'`` (the
    unweighted task loss the weighting net is trained to lower: the
    classifier's loss, or the distilled student's own loss). In ``'loss'``
    mode (the Runner's real step) the weights are constants, so the Runner's
    optimiser never sees a gradient of the weighting net.

    Args:
        model (dict): the wrapped model's config.
        weight_net (dict): the weighting net's config.
        normalize (bool): weights relative to their batch sum (see
            above).
        data_preprocessor (dict, optional): merged into ``model`` as the
            Runner does for a plain model; the wrapper shares its
            preprocessor.
    """

    def __init__(self,
                 model,
                 weight_net=dict(type='MetaWeightNet'),
                 normalize=True,
                 data_preprocessor=None,
                 init_cfg=None):
        model = dict(model)
        if data_preprocessor is not None:
            model.setdefault('data_preprocessor', data_preprocessor)
        model = MODELS.build(model)
        super().__init__(data_preprocessor=model.data_preprocessor,
                         init_cfg=init_cfg)
        self.model = model
        self.weight_net = MODELS.build(
            weight_net, default_args=dict(_scope_='pyramidkd_mm'))
        self.normalize = normalize
        self.distills = isinstance(model, PyramidDistiller)
        if not self.distills and not (
                hasattr(model, 'extract_feat')
                and hasattr(getattr(model, 'head', None), 'loss')):
            raise TypeError(
                'MetaWeightedModel weights the per-sample losses of an '
                'mmpretrain ImageClassifier (extract_feat and a ClsHead) or '
                f'a PyramidDistiller; got {type(model).__name__}')
        # The weighting net learns by the hook's meta step, in sync on all
        # ranks: DDP must neither wait for nor average its gradients.
        self._ddp_params_and_buffers_to_ignore = [
            f'weight_net.{n}' for n, _ in self.weight_net.named_parameters()
        ] + [f'model.{n}' for n in getattr(
            model, '_ddp_params_and_buffers_to_ignore', [])]

    def _weighted(self, inputs, data_samples, keep_graph=False):
        """The losses with the per-sample part weighted, and the per-sample
        losses the weighting net saw.

        Args:
            keep_graph (bool): the weights keep their graph to the
                weighting net (else they are constants).
        """
        seen = {}

        def weigh(losses):
            seen['losses'] = losses.detach()
            weights = self.weight_net(losses)
            seen['weights'] = weights.detach()
            if not keep_graph:
                weights = weights.detach()
            if self.normalize:
                weights = weights * (len(weights) / weights.sum())
            return weights

        if self.distills:
            losses = self.model.loss(inputs, data_samples,
                                     weigh_samples=weigh)
        else:
            feats = self.model.extract_feat(inputs)
            losses = self.model.head.loss(feats, data_samples,
                                          reduction_override='none')
            per_sample = losses['loss']
            if per_sample.shape != (len(data_samples), ):
                raise ValueError(
                    f'{type(self.model.head).__name__} returned a loss of '
                    f'shape {tuple(per_sample.shape)} with '
                    'reduction_override="none"; Meta-Weight-Net needs one '
                    'loss per sample')
            losses['loss'] = (weigh(per_sample) * per_sample).mean()
        losses['sample_weight'] = seen['weights'].mean()
        return losses, seen['losses']

    def loss(self, inputs, data_samples):
        """The real step's losses: the current weights, as constants."""
        return self._weighted(inputs, data_samples)[0]

    @torch.no_grad()
    def sample_losses(self, inputs, data_samples):
        """The (N,) per-sample losses the weighting net sees, e.g. to plot
        or evaluate the learned weights."""
        return self._weighted(inputs, data_samples)[1]

    def meta_loss(self, inputs, data_samples):
        """The unweighted task loss (on the clean meta set)."""
        model = self.model.student if self.distills else self.model
        return model.loss(inputs, data_samples)

    def predict(self, inputs, data_samples=None):
        return self.model.predict(inputs, data_samples)

    def _forward(self, inputs, data_samples=None):
        return self.model._forward(inputs, data_samples)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'weighted_loss':
            return self._weighted(inputs, data_samples, keep_graph=True)[0]
        if mode == 'meta_loss':
            return self.meta_loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'invalid mode {mode!r}; use loss, weighted_loss, '
                           'meta_loss, predict or tensor')
