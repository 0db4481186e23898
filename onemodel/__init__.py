"""onemodel: one shared transformer backbone, small modality adapters, many problems."""

__version__ = "0.1.0"
