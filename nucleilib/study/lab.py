"""JupyterLab on the chapters, its kernels in the study's environment.

``python -m nucleilib.study.lab [flags of jupyter lab] [folder]`` (``make lab``) sets what
:func:`nucleilib.study.runner.set_study_environment` sets for ``nuclei study`` (oneDNN on, so
that a chapter run in Lab computes with the kernels the book's run used; without it, an
AVX2-only CPU cannot even train DeepLabV3+) and hands over to ``jupyter lab``, whose kernels
inherit it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .runner import set_study_environment


def lab_command(argv: Sequence[str]) -> list[str]:
    """The ``jupyter lab`` command line of this environment for ``argv``.

    Examples
    --------
    >>> lab_command(["--no-browser", "notebooks/"])[1:]
    ['lab', '--no-browser', 'notebooks/']
    """
    return [str(Path(sys.executable).with_name("jupyter")), "lab", *argv]


def main(argv: Sequence[str] | None = None) -> None:
    set_study_environment()
    command = lab_command(sys.argv[1:] if argv is None else argv)
    if not Path(command[0]).is_file():
        sys.exit(f"no JupyterLab in {Path(command[0]).parent}: install the lab extra (make lab-install)")
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
