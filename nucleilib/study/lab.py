"""JupyterLab on the chapters, its kernels in the study's environment.

``python -m nucleilib.study.lab [flags of jupyter lab] [folder]`` (``make lab``) sets what
:func:`nucleilib.study.runner.set_study_environment` sets for ``nuclei study`` (oneDNN on, so
that a chapter run in Lab computes with the kernels the book's run used; without it, an
AVX2-only CPU cannot even train DeepLabV3+) and hands over to ``jupyter lab``, whose kernels
inherit it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import NucleiError
from .runner import set_study_environment


class LabNotInstalledError(NucleiError, RuntimeError):
    """This environment has no JupyterLab (the ``[lab]`` extra)."""


def lab_command(argv: Sequence[str]) -> list[str]:
    """The ``jupyter lab`` command line of this environment for ``argv``.

    Raises
    ------
    LabNotInstalledError
        When the environment has no ``jupyter-lab`` beside its Python.
    """
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.is_file() or shutil.which("jupyter-lab", path=str(jupyter.parent)) is None:
        raise LabNotInstalledError(
            f"no JupyterLab in {jupyter.parent}: install the lab extra (`make lab` or pip install -e '.[lab]')"
        )
    return [str(jupyter), "lab", *argv]


def main(argv: Sequence[str] | None = None) -> None:
    set_study_environment()
    try:
        command = lab_command(sys.argv[1:] if argv is None else argv)
    except LabNotInstalledError as err:
        sys.exit(str(err))
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
