"""The pyramid distiller: a student trained with its own losses plus per-level
feature distillation from a frozen teacher, on the levels a selector picks."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.model import BaseModel
from mmengine.runner import load_state_dict
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.utils import get_installed_path
from torch import nn

from ..registry import MODELS
from .pyramid import PyramidTap


def resolve_config(path):
    """Path of a config given as a file or as ``package::rel/path.py``.

    The ``package::`` form (``mmdet::``, ``mmseg::``, ``mmpretrain::``,
    ``pyramidkd_mm::``) points into the installed package's ``.mim/configs``
    folder, as ``_base_`` entries do.
    """
    if '::' not in path:
        return path
    module, rel = path.split('::', 1)
    try:
        root = get_installed_path(MODULE2PACKAGE.get(module, module))
    except Exception:  # noqa: BLE001 - one clear error for any lookup failure
        raise ValueError(f'config {path!r}: package {module!r} is not '
                         'installed (unknown scope)') from None
    resolved = osp.join(root, '.mim', 'configs', rel)
    if not osp.isfile(resolved):
        raise FileNotFoundError(f'config {path!r} not found at {resolved}')
    return resolved


def build_teacher(config, checkpoint):
    """Build the teacher from a config file and load its weights.

    Args:
        config (str): config path (``mmdet::...`` scopes work) whose
            ``model`` is the teacher.
        checkpoint (str | None): weights, a path or URL; ``None`` keeps a
            randomly initialised teacher (tests and benchmarks only).
    """
    cfg = Config.fromfile(resolve_config(config))
    model_cfg = cfg.model
    model_cfg.setdefault('_scope_', cfg.get('default_scope'))
    if cfg.get('data_preprocessor') is not None:  # as the Runner merges it
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    teacher = MODELS.build(model_cfg)
    if checkpoint is None:
        return teacher
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'teacher checkpoint {checkpoint!r} does not exist; train the '
            f'teacher with tools/train.py {config} or point '
            'model.teacher.checkpoint at its weights')
    state = _load_checkpoint(checkpoint, map_location='cpu')
    state = state.get('state_dict', state)
    expected = teacher.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected)
                   if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f'teacher checkpoint {checkpoint} does not match the teacher '
            f'config {config}: {len(missing)} missing keys '
            f'{missing[:3]}, {len(unexpected)} unexpected keys '
            f'{unexpected[:3]}, {len(wrong)} shape mismatches {wrong[:3]}')
    load_state_dict(teacher, state, strict=True)
    teacher._is_init = True  # the Runner's init_weights must not reset it
    return teacher


@MODELS.register_module()
class PyramidDistiller(BaseModel):
    """Distills a frozen teacher's feature pyramid into a student.

    The student computes its own toolbox losses unchanged; its pyramid is
    read on the way. The selector then marks which (sample, level) pairs to
    distill, and only those are computed: the teacher runs on the selected
    samples and only as deep as the selected levels need, and each level's
    connector and loss run on its selected samples alone. The level losses
    ``loss_distill_<level>`` are sums over selected samples divided by the
    batch size, so a uniform mask gives the usual batch mean. Logged besides:
    ``sel_<level>`` (selection rate), ``cost_<level>`` (the teacher compute
    that dropping the level would save) and ``distill_cost`` (the teacher
    pyramid compute spent, as a fraction of distilling every level).

    Args:
        student (dict): the toolbox model config of the student.
        teacher (dict): ``config`` (path of the teacher's config) and
            ``checkpoint`` (its weights, see :func:`build_teacher`).
        levels (Sequence[str]): names of the distilled levels, mapped in order
            onto the pyramid (FPN outputs or backbone stages, shallowest
            first), e.g. ``('p2', 'p3', 'p4', 'p5')``.
        distill_loss (dict): per-sample feature loss config.
        selector (dict): layer selector config, built with ``levels``.
        loss_balancer (dict, optional): e.g. ``dict(type='GradNorm')``,
            built with the level loss names; it reweights the level losses.
        balance_layer (str, optional): the student's module whose
            parameters the balancer takes gradient norms on; by default the
            C5 lateral conv of an FPN (every P level passes through it) or
            the first backbone stage (the deepest layer feeding every C
            level).
        source (str): pyramid source, see :class:`PyramidTap`.
        probe_size (int): side of the dummy image used at build time to check
            that teacher and student levels line up and to size connectors.
        data_preprocessor (dict, optional): merged into the student config
            as the Runner does for a plain model; the distiller uses the
            student's preprocessor.
    """

    def __init__(self,
                 student,
                 teacher,
                 levels=('p2', 'p3', 'p4', 'p5'),
                 distill_loss=dict(type='PearsonLoss'),
                 selector=dict(type='UniformSelector'),
                 loss_balancer=None,
                 balance_layer=None,
                 source='auto',
                 probe_size=64,
                 data_preprocessor=None,
                 init_cfg=None):
        # The preprocessor the Runner hands over is the student's, exactly as
        # for a plain student model; the distiller shares that module.
        student = dict(student)
        if data_preprocessor is not None:
            student.setdefault('data_preprocessor', data_preprocessor)
        student = MODELS.build(student)
        super().__init__(data_preprocessor=student.data_preprocessor,
                         init_cfg=init_cfg)
        self.levels = tuple(levels)
        self.student = student
        self.teacher = build_teacher(teacher['config'],
                                     teacher.get('checkpoint'))
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.student_tap = PyramidTap(self.student, source, 'student')
        self.teacher_tap = PyramidTap(self.teacher, source, 'teacher')
        self._check_normalization()
        own_scope = dict(_scope_='pyramidkd_mm')
        self.distill_loss = MODELS.build(distill_loss, default_args=own_scope)
        self.selector = MODELS.build(
            selector, default_args=dict(levels=self.levels, **own_scope))
        self.balancer = None
        if loss_balancer is not None:
            self.balancer = MODELS.build(loss_balancer, default_args=dict(
                names=[f'loss_distill_{n}' for n in self.levels],
                **own_scope))
            self.balance_layer = balance_layer or (
                f'neck.lateral_convs.{len(student.neck.lateral_convs) - 1}'
                if self.student_tap.source == 'neck' else
                f'backbone.{student.backbone.res_layers[0]}')
            student.get_submodule(self.balance_layer)  # fail early if wrong
        probe = torch.zeros(1, 3, probe_size, probe_size)
        self.connectors = self._build_connectors(probe)
        shared, prefix, own = self.teacher_tap.level_costs(
            probe, len(self.levels))
        self.register_buffer('cost_shared', torch.tensor(shared),
                             persistent=False)
        self.register_buffer('cost_prefix', prefix, persistent=False)
        self.register_buffer('cost_own', own, persistent=False)

    def _check_normalization(self):
        """The teacher sees the student's inputs: their normalisation must
        agree."""
        ours, theirs = self.data_preprocessor, self.teacher.data_preprocessor
        for stat in ('mean', 'std'):
            a, b = getattr(ours, stat, None), getattr(theirs, stat, None)
            if a is not None and b is not None and not torch.allclose(a, b):
                raise ValueError(
                    f'teacher data_preprocessor {stat} {b.flatten().tolist()}'
                    f' differs from the student\'s {a.flatten().tolist()}; '
                    'the teacher must be trained on identically normalised '
                    'inputs')

    def _build_connectors(self, probe):
        """Check that the pyramids line up; 1x1 convs where channels differ."""
        shapes = {}
        for role, tap in (('student', self.student_tap),
                          ('teacher', self.teacher_tap)):
            was_training = tap.model.training
            tap.model.eval()  # probe shapes without touching BN statistics
            shapes[role] = tap.shapes(probe)
            tap.model.train(was_training)
            if len(shapes[role]) < len(self.levels):
                raise ValueError(
                    f'{len(self.levels)} levels {self.levels} configured but '
                    f'the {role} {tap.source} has only {len(shapes[role])} '
                    'pyramid levels; shorten `levels` or give the '
                    f'{role} more outputs')
        connectors = nn.ModuleDict()
        for name, (cs, ss), (ct, st) in zip(self.levels, shapes['student'],
                                             shapes['teacher']):
            if ss != st:
                raise ValueError(
                    f'level {name}: student stride {ss} but teacher stride '
                    f'{st}; the pyramids must have the same resolutions')
            connectors[name] = nn.Identity() if cs == ct else nn.Conv2d(
                cs, ct, 1)
        return connectors

    def train(self, mode=True):
        """Switch the student only: the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def mask_cost(self, mask):
        """Relative teacher compute per sample of a (batch, levels) mask."""
        m = mask.float()
        cost = (m.amax(1) * self.cost_shared + (m * self.cost_prefix).amax(1)
                + m @ self.cost_own)
        return cost / (self.cost_shared + self.cost_prefix.max()
                       + self.cost_own.sum())

    def loss(self, inputs, data_samples):
        with self.student_tap.capture() as student_feats:
            losses = self.student.loss(inputs, data_samples)
        feats = student_feats[:len(self.levels)]
        mask = self.selector(feats, data_samples).bool()
        per_sample = self.distill(inputs, feats, mask)
        batch = mask.shape[0]
        cost = self.mask_cost(mask)
        for j, name in enumerate(self.levels):
            losses[f'loss_distill_{name}'] = per_sample[:, j].sum() / batch
            losses[f'sel_{name}'] = mask[:, j].float().mean()
            # Marginal cost: what dropping this level would save.
            without = mask.clone()
            without[:, j] = False
            losses[f'cost_{name}'] = (cost - self.mask_cost(without)).mean()
        losses['distill_cost'] = cost.mean()
        if self.balancer is not None:
            losses.update(self._balance(losses, per_sample, mask))
        return losses

    def _balance(self, losses, per_sample, mask):
        """Reweight the level losses in place with the balancer.

        The balancer sees each level's mean over the samples that selected it,
        so its training-rate ratios do not depend on how often a level is
        selected; levels no sample selected are absent (exact zero) and keep
        their weight. The weighted ``loss_distill_<level>`` are what train.
        """
        counts = mask.sum(0).clamp_min(1)
        means = {f'loss_distill_{n}': per_sample[:, j].sum() / counts[j]
                 for j, n in enumerate(self.levels)}
        params = self.student.get_submodule(self.balance_layer).parameters()
        _, weights = self.balancer(means, params)
        for name, weight in zip(means, weights.values()):
            losses[name] = weight * losses[name]
        return weights

    def distill(self, inputs, student_feats, mask):
        """Per-sample, per-level distillation losses; zero where unselected.

        Returns:
            Tensor: (batch, levels) losses.
        """
        per_sample = student_feats[0].new_zeros(mask.shape)
        rows = mask.any(1).nonzero()[:, 0]
        if len(rows) == 0:
            return per_sample
        with torch.no_grad():
            teacher_feats = self.teacher_tap.extract(inputs[rows],
                                                     mask[rows].any(0))
        for j, name in enumerate(self.levels):
            sel = mask[rows, j].nonzero()[:, 0]
            if len(sel) == 0:
                continue
            student = self.connectors[name](student_feats[j][rows[sel]])
            per_sample[rows[sel], j] = self.distill_loss(
                student, teacher_feats[j][sel])
        return per_sample

    def predict(self, inputs, data_samples=None):
        return self.student.predict(inputs, data_samples)

    def _forward(self, inputs, data_samples=None):
        return self.student._forward(inputs, data_samples)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise RuntimeError(f'invalid mode {mode!r}; use loss, predict or '
                           'tensor')
