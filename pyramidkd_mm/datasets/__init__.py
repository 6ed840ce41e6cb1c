from .digits import CLASSES, generate_digits, prepare_data
from .noisy_digits import (generate_noisy_digits, long_tail_counts,
                           setting_name, transition_matrix)

__all__ = [
    'CLASSES', 'generate_digits', 'generate_noisy_digits', 'long_tail_counts',
    'prepare_data', 'setting_name', 'transition_matrix'
]
