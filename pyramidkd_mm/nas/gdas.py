"""GDAS-LS: per-level skip/distill choices sampled with Gumbel-softmax and a
straight-through hard sample (Dong & Yang, CVPR 2019)."""
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import MODELS
from .darts import DARTSSelector


@MODELS.register_module()
class GDASSelector(DARTSSelector):
    """A 2-way categorical (skip, distill) per level, sampled once per
    iteration for the whole batch.

    The sample is y = softmax((a + G) / tau) with Gumbel noise G; its hard
    version h = onehot(argmax y) - y.detach() + y is exactly 0 or 1 in the
    forward pass and has y's gradient (straight-through). Level l is
    distilled, and computed, only where h_l = 1, weighted by h_l; its logits
    get a gradient only then, as in GDAS, where only the sampled operation
    runs. The hypergradient reaches the logits through h (see
    :class:`Architect`). :class:`GateSearchHook` anneals the temperature tau
    and calls :meth:`resample` before every iteration, so all passes of an
    iteration see one sample. Outside training the mask is the most
    probable choice per level.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # column 0: skip, column 1: distill
        self.logits = nn.Parameter(torch.zeros(len(self.levels), 2))
        self.temperature = 10.0
        self.noise = None

    def resample(self):
        """Draw the Gumbel noise of the next iteration's sample."""
        with self.rng:
            uniform = torch.rand_like(self.logits).clamp(1e-10, 1 - 1e-10)
        self.noise = -torch.log(-torch.log(uniform))

    def gates(self):
        if self.noise is None:
            self.resample()
        soft = F.softmax((self.logits + self.noise) / self.temperature, -1)
        hard = F.one_hot(soft.argmax(-1), 2).to(soft)
        return (hard - soft.detach() + soft)[:, 1]

    def probabilities(self):
        return self.logits.detach().softmax(-1)[:, 1]

    def forward(self, student_feats, data_samples):
        if self.training:
            flags = self.gates().detach() > 0.5
        else:
            flags = self.probabilities() > 0.5
        return flags.expand(student_feats[0].shape[0], -1)
