"""Searches for one fixed subset of pyramid levels (the NAS baselines of
RL-KD): gate searches run as a Runner hook, mask searches as Runner loops."""
from .darts import Architect, DARTSSelector
from .evolution import EvolutionSearchLoop
from .gate_search_hook import GateSearchHook
from .gdas import GDASSelector
from .mask_search_loop import ExhaustiveSearchLoop, MaskSearchLoop
from .result import derive_mask, write_search_result

__all__ = [
    'Architect', 'DARTSSelector', 'EvolutionSearchLoop',
    'ExhaustiveSearchLoop', 'GateSearchHook', 'GDASSelector',
    'MaskSearchLoop', 'derive_mask', 'write_search_result'
]
