"""The one set-up call every chapter makes after its parameters cell.

>>> from nucleilib.study import chapter                     # doctest: +SKIP
>>> run = chapter.setup(profile, artefacts)                 # doctest: +SKIP
>>> run.facts()                                             # doctest: +SKIP

It finds the project folder, makes the profile's artefact folder, silences the
start-up noise of the libraries the chapters use and sets one plotting theme, so
the chapters hold only what they are about.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runner import project_root, run_info

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

    def facts(self) -> Any:
        """The run's profile, machine, versions and commit as a one-column table."""
        import pandas as pd

        return pd.DataFrame.from_dict(run_info(self.profile), orient="index", columns=["this run"])

    def path(self, name: str) -> Path:
        """A file of this run's artefact folder."""
        return self.out / name

    def save_json(self, name: str, values: Any) -> Path:
        """Write ``values`` as indented JSON into the artefact folder."""
        target = self.out / name
        target.write_text(json.dumps(values, indent=2, sort_keys=True, default=float) + "\n")
        return target

    def load_json(self, name: str) -> Any:
        """Read a JSON file of the artefact folder (written by this or an earlier chapter)."""
        return json.loads((self.out / name).read_text())


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
    out.mkdir(parents=True, exist_ok=True)
    if theme:
        import seaborn as sns

        sns.set_theme(style="whitegrid", context="notebook")
    # TensorFlow's Python logger (retracing notices and the like), whether or not it is imported yet.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return ChapterRun(profile, root, out)
