"""nucleilib: nuclei segmentation for microscopy images, and the study behind it.

The tool, in three lines::

    from nucleilib import Segmenter
    segmenter = Segmenter.from_pretrained("unet-dsb2018")
    labels = segmenter.segment("my_image.png")

The tool's modules (reading and writing, preprocessing, models, training, prediction
and separation, metrics, plotting, export) sit at the top of the package; the study
(manifest and splits, explanations, audit, profiles, the notebook runner, book tooling)
is the sub-package :mod:`nucleilib.study`, which the tool never imports.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Segmenter", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import nucleilib` (and `nuclei --help`) does not import TensorFlow.
    if name == "Segmenter":
        from .segmenter import Segmenter

        return Segmenter
    raise AttributeError(f"module 'nucleilib' has no attribute {name!r}")
