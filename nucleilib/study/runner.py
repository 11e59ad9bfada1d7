"""The study runner: execute the notebooks with papermill, then build the book.

Notebooks are jupytext text files under ``notebooks/``. Each run writes executed
notebooks to ``book/<profile>/`` and artefacts to ``artefacts/<profile>/``; a state
file there remembers a digest of each notebook's source and parameters, so an
unchanged notebook is not run again and an interrupted study resumes. A second,
committed file there, ``run-log.json``, records for each notebook how long its last
successful run took, when, at which commit and on which machine.

A run with one-off parameters (``nuclei study -p NAME VALUE``) never touches that
published run: it writes into the scratch folder ``artefacts/lab/`` (a copy of the
profile's artefacts, made by the chapters' set-up on first use) or a folder the user
names, and keeps its executed notebooks in that folder's ``executed/``.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import NucleiError
from ..machine import machine_info
from ..progress import LOG_ENV
from .profiles import NOTEBOOKS, PROFILES, SCRATCH, check_profile, notebook_parameters

STATE_FILE = "study-state.json"
#: The shipped models' folder inside a scratch artefact folder.
SCRATCH_MODELS = "pretrained"
#: Written last into a scratch folder once it holds its copy of the published run.
SEED_RECORD = ".seeded-from.json"
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
    """SHA-256 of a notebook's cells (source and metadata) and its parameters.

    The jupytext header (kernel name, jupytext's own options) is left out: it changes
    nothing a run computes.
    """
    import jupytext

    cells = [(c.cell_type, c.source, dict(c.metadata)) for c in jupytext.read(source).cells]
    digest = hashlib.sha256(json.dumps(cells, sort_keys=True).encode())
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    return digest.hexdigest()


def is_scratch(folder: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is, or lies inside, the project's scratch folder ``artefacts/lab``.

    Examples
    --------
    >>> is_scratch("/p/artefacts/lab", "/p"), is_scratch("/p/artefacts/cpu", "/p")
    (True, False)
    """
    scratch = Path(os.path.abspath(Path(root) / SCRATCH))
    here = Path(os.path.abspath(folder))
    return here == scratch or scratch in here.parents


def seed_scratch(scratch: Path, committed: Path, shipped: Path | None = None, *, leave_out: Sequence[str] = ()) -> bool:
    """Give a scratch folder its copy of a published run's artefacts and of the shipped models.

    Copies, not links, so that a cell rewriting a file in place cannot reach the committed
    one; a file the scratch folder already has is never replaced. Each file is copied to a
    temporary name and renamed, and :data:`SEED_RECORD` is written last, so an interrupted
    seeding finishes at the next call. ``leave_out`` names top-level folders of ``committed``
    not to copy (``models``: a run that trains everything again). Returns whether anything
    was copied.
    """
    if (scratch / SEED_RECORD).is_file():
        return False
    if shipped is None:
        from ..models import PRETRAINED_DIR as shipped
    copied = 0
    for source_root, target_root in ((committed, scratch), (shipped, scratch / SCRATCH_MODELS)):
        for source in sorted(source_root.rglob("*")) if source_root.is_dir() else []:
            relative = source.relative_to(source_root)
            target = target_root / relative
            if source.is_dir() or target.exists() or (source_root == committed and relative.parts[0] in leave_out):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            shutil.copy2(source, partial)
            os.replace(partial, target)
            copied += 1
    scratch.mkdir(parents=True, exist_ok=True)
    record = {"artefacts": str(committed), "shipped models": str(shipped), "files": copied, "left out": list(leave_out)}
    (scratch / SEED_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"{scratch}: {copied} file(s) copied from {committed} and the shipped models; the published run stays as it is"
    )
    return True


def chapter_parameters(source: str | os.PathLike[str]) -> dict[str, Any]:
    """The names and default values of a chapter's ``parameters`` cell.

    Raises
    ------
    StudyError
        When the chapter has no parameters cell or it holds more than literal assignments.
    """
    import jupytext

    cells = [c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise StudyError(f"{source}: {len(cells)} cells tagged 'parameters' (a chapter has one)")
    values: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        else:
            raise StudyError(f"{source}: the parameters cell holds {ast.unparse(node)!r}, not `name = value`")
        try:
            values[name] = ast.literal_eval(value)
        except ValueError:
            values[name] = ast.unparse(value)  # an expression such as 16 * 256 * 256
    return values


def parse_parameter_value(text: str) -> Any:
    """A ``-p NAME VALUE`` value as papermill reads it: None, booleans, numbers and
    Python literals (lists, quoted strings) by their value, anything else as a string.

    Examples
    --------
    >>> [parse_parameter_value(t) for t in ("None", "true", "48", "0.5", "[1, 2]", "artefacts/x")]
    [None, True, 48, 0.5, [1, 2], 'artefacts/x']
    """
    words = {"none": None, "null": None, "true": True, "false": False}
    if text.strip().lower() in words:
        return words[text.strip().lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def one_off_parameters(
    project: Path, names: Sequence[str], overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], Path, dict[str, set[str]]]:
    """Check one-off parameters against the chapters they go to; return them with the
    artefact folder the run writes into (the scratch folder unless ``artefacts`` is given)
    and each chosen chapter's parameter names.

    Raises
    ------
    StudyError
        For a name that no chosen chapter has, or an artefact folder of a profile's
        published run.
    """
    accepted = {name: set(chapter_parameters(project / "notebooks" / f"{name}.py")) for name in names}
    known = set().union(*accepted.values())
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise StudyError(
            f"no chosen chapter ({', '.join(names)}) has the parameter(s) {', '.join(unknown)}; "
            f"they have: {', '.join(sorted(known))}"
        )
    values = {**overrides, "artefacts": str(overrides.get("artefacts", SCRATCH))}
    folder = Path(values["artefacts"])
    folder = Path(os.path.abspath(folder if folder.is_absolute() else project / folder))
    published = {Path(os.path.abspath(project / "artefacts" / p)) for p in PROFILES}
    if folder in published:
        raise StudyError(
            f"-p artefacts {values['artefacts']}: that is a profile's published run, which one-off "
            f"parameters never write over; use {SCRATCH} (the default) or another folder"
        )
    return values, folder, accepted


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


def set_study_environment() -> None:
    """Set the environment every training and scoring of the study runs in (the chapters'
    kernels inherit it); call it before TensorFlow is imported, which reads it once.

    A value already set by the user is kept.
    """
    # TensorFlow's C++ start-up chatter would fill the book.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow turns its oneDNN kernels on by itself only on CPUs with AVX-512; without them
    # (an AVX2-only AMD EPYC, say) DeepLabV3+'s dilated convolutions cannot be trained at all
    # ("CPU implementations do not yet support dilation rates larger than 1"), and the other
    # networks would be trained by other kernels than the chapters use. On for every machine.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def run_study(
    profile: str,
    *,
    only: Sequence[str] | None = None,
    force: bool = False,
    root: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
    progress_bar: bool = True,
    parameters: Mapping[str, Any] | None = None,
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
    parameters : mapping, optional
        One-off values for parameters of the chosen chapters (each goes to the chapters
        that have it). Such a run writes into the scratch folder ``artefacts/lab``, or
        the ``artefacts`` given here, never into ``artefacts/<profile>``, and keeps its
        executed notebooks in that folder's ``executed/`` instead of ``book/<profile>``.

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
    overrides: dict[str, Any] = {}
    accepted: dict[str, set[str]] = {}
    artefact_dir = project / "artefacts" / profile
    out_dir = project / "book" / profile
    if parameters:
        overrides, artefact_dir, accepted = one_off_parameters(project, names, parameters)
        out_dir = artefact_dir / "executed"
        log(f"one-off parameters {overrides}: writing into {artefact_dir} (the published run stays as it is)")
    out_dir.mkdir(parents=True, exist_ok=True)
    set_study_environment()
    state_path = artefact_dir / STATE_FILE
    state = _read_state(state_path)
    machine: dict[str, Any] | None = None  # looked up once, at the first notebook that runs
    runs = []
    for number, name in enumerate(names, start=1):
        source = project / "notebooks" / f"{name}.py"
        if not source.is_file():
            raise StudyError(f"{source}: notebook source is missing")
        params = notebook_parameters(name, profile)
        if overrides:
            params.update({k: v for k, v in overrides.items() if k in accepted[name]})
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
        record_run(artefact_dir / RUN_LOG, name, seconds, machine=machine, root=project)
        shown = output.relative_to(project) if project in output.parents else output
        log(f"{prefix}: done in {seconds:.0f} s -> {shown}")
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
    still leaves a complete log, but not those of notebooks the study no longer has
    (a chapter renamed or renumbered).

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
    log = {name: entry for name, entry in _read_state(path).items() if name in NOTEBOOKS or name == notebook}
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
    machine = machine_info()
    info["CPU"] = machine["cpu"]
    info["CPU cores"] = str(machine["cores"])
    info["GPU"] = machine["gpu"]
    info["Python"] = platform.python_version()
    for package in ("tensorflow", "numpy", "scikit-image", "pandas", "papermill", "jupyter-book"):
        try:
            info[package] = md.version(package)
        except md.PackageNotFoundError:
            info[package] = "not installed"
    info["git commit"] = _git_commit()
    return info


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
