"""The one set-up call every chapter makes after its parameters cell.

>>> from nucleilib.study import chapter                     # doctest: +SKIP
>>> run = chapter.setup(profile, artefacts)                 # doctest: +SKIP
>>> run.facts()                                             # doctest: +SKIP

It finds the project folder, makes the profile's artefact folder, silences the
start-up noise of the libraries the chapters use and sets one plotting theme, so
the chapters hold only what they are about.

A chapter opened in JupyterLab keeps its parameters cell's defaults, whose
``artefacts`` is the scratch folder ``artefacts/lab``: the first set-up there copies
the profile's committed artefacts and shipped models into it, so cells run in Lab
read the published run's results and never write over them (``nuclei study``
passes ``artefacts/<profile>`` instead).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runner import SCRATCH_MODELS, is_scratch, project_root, run_info, seed_scratch

#: Warnings that say nothing to a reader of the book.
QUIET_WARNINGS = (
    "IProgress not found",  # tqdm's notebook check
    "Ignore dtype",  # innvestigate, on every bias
    "`Model.state_updates` will be removed",  # Keras 2 graph mode, in the LRP kernel
)


@dataclass(frozen=True)
class ChapterRun:
    """Where one chapter's run reads and writes, and what it runs on."""

    profile: str
    root: Path
    out: Path

    @property
    def models(self) -> Path:
        """Cache of trained models (one folder per training configuration)."""
        return self.out / "models"

    @property
    def scores(self) -> Any:
        """Cache of the networks' per-image scores (:class:`nucleilib.study.scores.ScoreCache`):
        re-executing a chapter reads them instead of segmenting the test images again."""
        from .scores import SCORES_FOLDER, ScoreCache

        return ScoreCache(self.out / SCORES_FOLDER)

    @property
    def scratch(self) -> bool:
        """Whether this run works in a scratch copy (``artefacts/lab``) rather than the profile's folder."""
        return is_scratch(self.out, self.root)

    def shipped(self, name: str = "unet-dsb2018") -> Path:
        """The folder a chapter saves a shipped model into: the package's, or in a scratch
        run the copy inside the scratch folder (so Lab never changes what ``nuclei`` ships)."""
        from ..models import PRETRAINED_DIR

        return (self.out / SCRATCH_MODELS if self.scratch else PRETRAINED_DIR) / name

    def facts(self) -> Any:
        """The run's profile, machine, versions and commit as a one-column table."""
        import pandas as pd

        return pd.DataFrame.from_dict(run_info(self.profile), orient="index", columns=["this run"])


def setup(profile: str, artefacts: str | os.PathLike[str], *, theme: bool = True) -> ChapterRun:
    """Prepare a chapter's kernel and return where its run reads and writes.

    Parameters
    ----------
    profile : str
        The run's profile (``smoke``, ``cpu``, ``gpu``), from the parameters cell.
    artefacts : path-like
        The artefact folder, relative to the project root (or absolute).
    theme : bool
        Set the seaborn theme of the book's figures.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    root = project_root()
    out = Path(artefacts) if Path(artefacts).is_absolute() else root / artefacts
    if is_scratch(out, root):
        seed_scratch(out, root / "artefacts" / profile)
    out.mkdir(parents=True, exist_ok=True)
    if theme:
        import seaborn as sns

        sns.set_theme(style="whitegrid", context="notebook")
    # TensorFlow's Python logger (retracing notices and the like), whether or not it is imported yet.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return ChapterRun(profile, root, out)
