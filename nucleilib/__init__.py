"""nucleilib: the library behind the nuclei segmentation study and the ``nuclei`` tool."""

__version__ = "0.1.0"
