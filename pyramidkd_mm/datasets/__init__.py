from .digits import CLASSES, generate_digits, prepare_data

__all__ = ['CLASSES', 'generate_digits', 'prepare_data']
