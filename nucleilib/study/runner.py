"""The study runner: execute the notebooks with papermill, then build the book.

Notebooks are jupytext text files under ``notebooks/``. Each run writes executed
notebooks to ``book/<profile>/`` and artefacts to ``artefacts/<profile>/``; a state
file there remembers a digest of each notebook's source and parameters, so an
unchanged notebook is not run again and an interrupted study resumes. A second,
committed file there, ``run-log.json``, records for each notebook how long its last
successful run took, when, at which commit and on which machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import NucleiError
from ..progress import LOG_ENV
from .profiles import NOTEBOOKS, check_profile, notebook_parameters

STATE_FILE = "study-state.json"
#: Committed timing log of each profile: notebook -> its last successful run.
RUN_LOG = "run-log.json"


class StudyError(NucleiError, RuntimeError):
    """A notebook of the study failed, or the project layout is broken."""


@dataclass(frozen=True)
class NotebookRun:
    """What the runner did with one notebook."""

    name: str
    status: str  # "ran" or "skipped"
    seconds: float
    output: Path


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The project folder (the one with ``_config.yml`` and ``notebooks/``), searched
    upwards from ``start`` (default: the working directory)."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "_config.yml").is_file() and (candidate / "notebooks").is_dir():
            return candidate
    raise StudyError(f"{here}: not inside the nuclei project (no _config.yml and notebooks/ above it)")


def notebook_digest(source: Path, parameters: dict[str, Any]) -> str:
    """SHA-256 of a notebook's text and its parameters."""
    digest = hashlib.sha256(source.read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    return digest.hexdigest()


def _read_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError):
        return {}  # a damaged state only costs a re-run


def _write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


def run_study(
    profile: str,
    *,
    only: Sequence[str] | None = None,
    force: bool = False,
    root: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
    progress_bar: bool = True,
) -> list[NotebookRun]:
    """Execute the study's notebooks in order under one profile.

    Parameters
    ----------
    profile : {"smoke", "cpu", "gpu"}
    only : sequence of str, optional
        Run just these notebooks (stems such as ``"01_eda"``).
    force : bool
        Run even notebooks whose source and parameters are unchanged.
    root : path-like, optional
        Project folder; found from the working directory by default.
    log : callable
        Receives one line per notebook.
    progress_bar : bool
        Show papermill's per-cell progress bar.

    Raises
    ------
    StudyError
        Naming the notebook that failed and the error it raised.
    """
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    check_profile(profile)
    project = project_root(root)
    names = list(NOTEBOOKS if not only else only)
    unknown = [n for n in names if n not in NOTEBOOKS]
    if unknown:
        raise StudyError(f"unknown notebook(s) {', '.join(unknown)}; the study has {', '.join(NOTEBOOKS)}")
    out_dir = project / "book" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    # The kernels inherit this: TensorFlow's C++ start-up chatter would fill the book.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    state_path = project / "artefacts" / profile / STATE_FILE
    state = _read_state(state_path)
    machine: dict[str, Any] | None = None  # looked up once, at the first notebook that runs
    runs = []
    for number, name in enumerate(names, start=1):
        source = project / "notebooks" / f"{name}.py"
        if not source.is_file():
            raise StudyError(f"{source}: notebook source is missing")
        params = notebook_parameters(name, profile)
        digest = notebook_digest(source, params)
        output = out_dir / f"{name}.ipynb"
        prefix = f"[{number}/{len(names)}] {name} ({profile})"
        if not force and output.is_file() and state.get(name, {}).get("digest") == digest:
            log(f"{prefix}: unchanged since its last run, skipped")
            runs.append(NotebookRun(name, "skipped", 0.0, output))
            continue
        log(f"{prefix}: running")
        state.pop(name, None)
        _write_state(state_path, state)
        notebook = jupytext.read(source)
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        hide_default_parameters(notebook)
        staged = out_dir / f".{name}.input.ipynb"
        jupytext.write(notebook, staged, fmt="ipynb")
        start = time.perf_counter()
        progress_log = out_dir / f"{name}.progress.log"
        progress_log.unlink(missing_ok=True)
        try:
            with _inline_figures(), _environment(**{LOG_ENV: str(progress_log)}):
                papermill.execute_notebook(
                    str(staged),
                    str(output),
                    parameters=params,
                    kernel_name="python3",
                    cwd=str(project),
                    progress_bar=progress_bar,
                )
        except PapermillExecutionError as err:
            raise StudyError(
                f"notebook {name} failed in cell {err.exec_count}: {err.ename}: {err.evalue} "
                f"(executed copy with the traceback: {output})"
            ) from None
        except Exception as err:  # kernel death, missing kernel, bad notebook JSON
            raise StudyError(f"notebook {name} could not be executed: {type(err).__name__}: {err}") from None
        finally:
            staged.unlink(missing_ok=True)
        seconds = time.perf_counter() - start
        problems = figure_problems(nbformat_read(output))
        if problems:
            raise StudyError(f"notebook {name}: " + "; ".join(problems) + f" (executed copy: {output})")
        state[name] = {
            "digest": digest,
            "seconds": round(seconds, 1),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "parameters": params,
        }
        _write_state(state_path, state)
        if machine is None:
            machine = machine_info()
        record_run(project / "artefacts" / profile / RUN_LOG, name, seconds, machine=machine, root=project)
        log(f"{prefix}: done in {seconds:.0f} s -> {output.relative_to(project)}")
        runs.append(NotebookRun(name, "ran", seconds, output))
    return runs


@contextlib.contextmanager
def _inline_figures() -> Iterator[None]:
    """Let the kernels draw figures into the notebook whatever ``MPLBACKEND`` says.

    A kernel inherits the environment, and ``MPLBACKEND=Agg`` (set for headless
    test runs, as CI does) overrides ipykernel's inline backend: ``plt.show()``
    would then put no figure in the book.
    """
    saved = os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["MPLBACKEND"] = saved


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables (which the kernels inherit) for the ``with`` block only."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def nbformat_read(path: str | os.PathLike[str]) -> Any:
    """Read an executed notebook (nbformat 4)."""
    import nbformat

    return nbformat.read(str(path), as_version=4)


def figure_cells(notebook: Any) -> list[tuple[int, dict[str, Any]]]:
    """The code cells of a notebook that the book shows as numbered figures.

    A cell becomes a figure with the metadata ``mystnb={"figure": {"caption": ...,
    "name": "fig-..."}}`` (myst-nb); ``{numref}`fig-...``` refers to it.

    Returns
    -------
    list of (int, dict)
        Index of each such cell and its figure options.
    """
    found = []
    for index, cell in enumerate(notebook.cells):
        options = cell.get("metadata", {}).get("mystnb", {}).get("figure")
        if cell.get("cell_type") == "code" and isinstance(options, dict):
            found.append((index, dict(options)))
    return found


def figure_problems(notebook: Any) -> list[str]:
    """What would break the book's numbered figures in an executed notebook.

    myst-nb wraps *every* rich output (an image, a table) of a figure cell in a
    figure of the same name, so a figure cell must show at most one; two give a
    duplicate label that fails the book build far from its cause. A figure also
    needs a caption and a ``fig-`` name.

    Returns
    -------
    list of str
        One line per problem, naming the figure and the cell; empty when fine.
    """
    problems = []
    for index, options in figure_cells(notebook):
        name = str(options.get("name", ""))
        label = f"figure {name or '(unnamed)'} (cell {index})"
        if not name.startswith("fig-"):
            problems.append(f"{label}: its name must start with 'fig-'")
        if not str(options.get("caption", "")).strip():
            problems.append(f"{label}: no caption")
        rich = [o for o in notebook.cells[index].get("outputs", []) if _shown(o)]
        if len(rich) > 1:
            problems.append(
                f"{label} shows {len(rich)} rich outputs; a figure cell must show one (move tables to the next cell)"
            )
    return problems


def _shown(output: Any) -> bool:
    """Whether the book renders an output as a rich element. ``glue(..., display=False)``
    records are display outputs too, but myst-nb takes them out before rendering."""
    if output.get("output_type") not in ("display_data", "execute_result"):
        return False
    record = output.get("metadata", {}).get("scrapbook")
    return not (isinstance(record, dict) and record.get("mime_prefix"))


def hide_default_parameters(notebook: Any) -> Any:
    """Tag a notebook's ``parameters`` cell ``remove-cell`` so the book shows only
    the cell papermill injects after it, with the values the run actually used."""
    for cell in notebook.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        if "parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    return notebook


def machine_info() -> dict[str, Any]:
    """The machine a notebook ran on: CPU model, logical cores, GPU(s) (``"none"``)."""
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "gpu": _gpu_names() or "none"}


def record_run(
    path: str | os.PathLike[str],
    notebook: str,
    seconds: float,
    *,
    machine: dict[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
    finished: datetime | None = None,
) -> dict[str, Any]:
    """Record one notebook's successful run in a profile's ``run-log.json``.

    The log maps each notebook to its last successful run; entries of notebooks
    not named here are kept, so a study that skips or runs only some notebooks
    still leaves a complete log.

    Parameters
    ----------
    path : path-like
        The log, ``artefacts/<profile>/run-log.json``.
    notebook : str
        Notebook stem, such as ``"02_unet"``.
    seconds : float
        Wall-clock seconds of the run.
    machine : dict, optional
        As :func:`machine_info` returns (looked up when not given).
    root : path-like, optional
        Folder whose git commit is recorded (default: this package's checkout).
    finished : datetime, optional
        End of the run (default: now), stored in UTC.

    Returns
    -------
    dict
        The whole log as written.
    """
    path = Path(path)
    log = _read_state(path)
    when = (finished or datetime.now(UTC)).astimezone(UTC)
    log[notebook] = {
        "seconds": round(float(seconds), 1),
        "finished_utc": when.isoformat(timespec="seconds"),
        "git_commit": _git_commit(root),
        "machine": dict(machine) if machine is not None else machine_info(),
    }
    _write_state(path, log)
    return log


def toc_for_profile(profile: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Write the table of contents for a profile's book and return its path.

    The committed ``_toc.yml`` lists the published (``cpu``) run; other profiles
    get a copy whose chapter paths point at ``book/<profile>/``.
    """
    check_profile(profile)
    project = project_root(root)
    text = (project / "_toc.yml").read_text()
    build = project / "_build"
    build.mkdir(exist_ok=True)
    target = build / f"_toc-{profile}.yml"
    target.write_text(text.replace("book/cpu/", f"book/{profile}/"))
    return target


def build_book(profile: str, *, root: str | os.PathLike[str] | None = None, strict: bool = True) -> Path:
    """Render the executed notebooks of a profile into HTML with jupyter-book.

    Notebook execution is off in ``_config.yml``: the book shows what the runner
    executed. With ``strict``, any Sphinx warning (a broken reference, a missing
    citation) fails the build.

    Returns
    -------
    Path
        The HTML folder (``_build/<profile>/_build/html``).
    """
    check_profile(profile)
    project = project_root(root)
    missing = [n for n in NOTEBOOKS if not (project / "book" / profile / f"{n}.ipynb").is_file()]
    if missing:
        raise StudyError(
            f"book/{profile}: no executed notebook for {', '.join(missing)}; "
            f"run `nuclei study --profile {profile}` first"
        )
    toc = toc_for_profile(profile, project)
    out = project / "_build" / profile
    command = [
        _jupyter_book_executable(),
        "build",
        str(project),
        "--toc",
        str(toc),
        "--path-output",
        str(out),
        "--all",
    ]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    env = dict(os.environ, NUCLEI_BOOK_PROFILE=profile)
    result = subprocess.run(command, cwd=project, env=env)
    if result.returncode != 0:
        raise StudyError(
            f"jupyter-book build failed for profile {profile} (exit {result.returncode}); see the log above"
        )
    return out / "_build" / "html"


def _jupyter_book_executable() -> str:
    beside_python = Path(sys.executable).with_name("jupyter-book")
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("jupyter-book")
    if found is None:
        raise StudyError("jupyter-book is not installed in this environment; run `make venv`")
    return found


def run_info(profile: str | None = None) -> dict[str, str]:
    """Facts about the run for the book: profile, hardware, versions, commit."""
    import importlib.metadata as md

    info: dict[str, str] = {}
    if profile:
        info["profile"] = profile
    info["date (UTC)"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    info["CPU"] = _cpu_model()
    info["CPU cores"] = str(os.cpu_count())
    info["GPU"] = _gpu_names() or "none"
    info["Python"] = platform.python_version()
    for package in ("tensorflow", "numpy", "scikit-image", "pandas", "papermill", "jupyter-book"):
        try:
            info[package] = md.version(package)
        except md.PackageNotFoundError:
            info[package] = "not installed"
    info["git commit"] = _git_commit()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_names() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return ", ".join(line.strip() for line in out.stdout.splitlines() if line.strip())


#: What a study run writes itself (executed notebooks, artefacts, the shipped model):
#: changes there do not make the code of a run differ from its commit.
STUDY_OUTPUTS: tuple[str, ...] = ("book/*/*.ipynb", "artefacts", "nucleilib/pretrained")


def _git_commit(folder: str | os.PathLike[str] | None = None) -> str:
    """The checkout's commit, marked when its code differs from it.

    Changes to :data:`STUDY_OUTPUTS` do not count: a run rewrites its own
    executed notebooks and artefacts as it goes, so they would mark every run.
    """
    try:
        here = Path(folder).resolve() if folder is not None else Path(__file__).resolve().parent
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        excluded = [f":(top,exclude,glob){pattern}" for pattern in STUDY_OUTPUTS]
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", *excluded],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
