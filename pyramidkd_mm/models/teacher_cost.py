"""What distillation costs the teacher: its FLOPs for a (sample, level) mask,
as a fraction of distilling every level of every sample."""
import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn


class _ExtractFeat(nn.Module):
    """Traceable view of ``model.extract_feat`` for the FLOP analysis."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, inputs):
        return self.model.extract_feat(inputs)


class TeacherCost(nn.Module):
    """The teacher compute :meth:`PyramidTap.extract` spends per sample.

    A sample's FLOPs for its level mask ``m`` are
    ``any(m) * shared + max_l(m_l * prefix_l) + sum_l(m_l * own_l)``:
    ``shared`` is paid once a sample has any level (an FPN's backbone,
    laterals and top-down path, or a backbone's stem), ``prefix_l`` by the
    deepest selected stage of a backbone pyramid, ``own_l`` by each selected
    FPN level's output conv. They are counted once by mmengine's
    ``FlopAnalyzer`` on a probe image and kept as fractions of the whole
    (float32: raw counts of 1e7-1e10 overflow float16).

    Args:
        tap (PyramidTap): the teacher's pyramid.
        probe (Tensor): (1, 3, H, W) image to count FLOPs on.
        num_levels (int): number of distilled levels; FPN levels beyond
            them are not computed and not counted.
    """

    def __init__(self, tap, probe, num_levels):
        super().__init__()
        shared, prefix, own = self._flops(tap, probe, num_levels)
        total = shared + prefix.max().item() + own.sum().item()
        # the whole pyramid's FLOPs per probe pixel: what other teacher work
        # (e.g. its head for a reward) is measured against
        self.flops_per_pixel = total / probe[0, 0].numel()
        self.register_buffer('shared', torch.tensor(shared / total),
                             persistent=False)
        self.register_buffer('prefix', prefix / total, persistent=False)
        self.register_buffer('own', own / total, persistent=False)

    @staticmethod
    def _flops(tap, probe, num_levels):
        flops = FlopAnalyzer(_ExtractFeat(tap.model), (probe, ))
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_module = flops.by_module()
        prefix = torch.zeros(num_levels)
        own = torch.zeros(num_levels)
        if tap.stages is None:
            convs = [by_module[f'model.neck.fpn_convs.{i}']
                     for i in range(len(tap.model.neck.fpn_convs))]
            n = min(num_levels, len(convs))
            own[:n] = torch.tensor(convs[:n], dtype=own.dtype)
            shared = (by_module['model.backbone'] + by_module['model.neck']
                      - sum(convs))
        else:
            names = tap.model.backbone.res_layers
            stage = torch.tensor(
                [float(by_module[f'model.backbone.{n}']) for n in names])
            prefix = stage.cumsum(0)[:num_levels]
            shared = by_module['model.backbone'] - stage.sum().item()
        return float(shared), prefix, own

    def forward(self, mask):
        """Per-sample cost (batch,) of a (batch, levels) mask, float32 (the
        ops are elementwise, which autocast leaves alone)."""
        m = mask.float()
        return (m.amax(1) * self.shared + (m * self.prefix).amax(1)
                + (m * self.own).sum(1))

    def expected(self, probs):
        """Expected cost of choosing each level independently with
        probability ``probs`` (levels,); differentiable, and equal to
        :meth:`forward` for 0/1 probabilities."""
        skip = 1 - probs
        # P(level l is the deepest selected) = p_l * prod_{k > l} (1 - p_k)
        deeper_skipped = torch.cat([skip.flip(0).cumprod(0).flip(0)[1:],
                                    skip.new_ones(1)])
        return ((1 - skip.prod()) * self.shared
                + (probs * deeper_skipped * self.prefix).sum()
                + (probs * self.own).sum())

    def marginal(self, mask):
        """(levels,) batch-mean compute that dropping each level from
        ``mask`` would save."""
        cost = self(mask)
        saved = []
        for level in range(mask.shape[1]):
            without = mask.clone()
            without[:, level] = False
            saved.append((cost - self(without)).mean())
        return torch.stack(saved)
