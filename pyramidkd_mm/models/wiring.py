"""Checks, at build time, that a teacher and a student can be distilled on
their pyramids, and the connectors that map one onto the other: a wrong
config fails here with one error, not in the first training step."""
import torch
from torch import nn

from .pyramid import Pyramid


def check_normalization(student_preprocessor, teacher_preprocessor):
    """The teacher sees the student's inputs: their normalisation must
    agree."""
    for stat in ('mean', 'std'):
        a = getattr(student_preprocessor, stat, None)
        b = getattr(teacher_preprocessor, stat, None)
        if a is not None and b is not None and not torch.allclose(a, b):
            raise ValueError(
                f'teacher data_preprocessor {stat} {b.flatten().tolist()}'
                f' differs from the student\'s {a.flatten().tolist()}; '
                'the teacher must be trained on identically normalised '
                'inputs')


def build_connectors(levels, student_tap, teacher_tap, probe):
    """Check that the pyramids line up; 1x1 convs where channels differ.

    Args:
        levels (Sequence[str]): the distilled levels, shallowest first.
        student_tap, teacher_tap (PyramidTap): the two pyramids.
        probe (Tensor): a dummy image batch to read the shapes from.

    Returns:
        tuple[nn.ModuleDict, Pyramid]: the connectors and the student's
        channels per pyramid level (``top``: deepest backbone output).
    """
    shapes = {}
    for role, tap in (('student', student_tap), ('teacher', teacher_tap)):
        was_training = tap.model.training
        tap.model.eval()  # probe shapes without touching BN statistics
        shapes[role] = tap.shapes(probe)
        tap.model.train(was_training)
        if len(shapes[role]) < len(levels):
            raise ValueError(
                f'{len(levels)} levels {tuple(levels)} configured but the '
                f'{role} {tap.source} has only {len(shapes[role])} pyramid '
                f'levels; shorten `levels` or give the {role} more outputs')
    connectors = nn.ModuleDict()
    for name, (cs, ss), (ct, st) in zip(levels, shapes['student'],
                                        shapes['teacher']):
        if ss != st:
            raise ValueError(
                f'level {name}: student stride {ss} but teacher stride '
                f'{st}; the pyramids must have the same resolutions')
        connectors[name] = nn.Identity() if cs == ct else nn.Conv2d(cs, ct, 1)
    channels = Pyramid(c for c, _ in shapes['student'])
    channels.top = shapes['student'].top
    return connectors, channels
