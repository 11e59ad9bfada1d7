"""Does a re-execution reproduce the published run? Compare two artefact folders number by number.

``nuclei study --verify`` re-executes chapters into a scratch copy of ``artefacts/<profile>``
(the committed models included, so nothing is trained) and hands both folders to
:func:`compare_folders`. Every CSV and JSON file the re-execution wrote is compared with the
committed one: *identical* when every value is the same as written, *equal up to float rounding*
when floats differ in their last bits only (relative difference at most
:data:`ROUNDING_TOLERANCE`: the same sum taken in another order by another CPU), once the
columns that measure time on this machine are left out (:func:`is_timing`). Files that hold
nothing but timings (the speed chapter's benchmarks, the run log) are listed, not compared.

>>> import pandas as pd
>>> old = pd.DataFrame({"model": ["a"], "DSB score": [0.5], "predict_s": [0.12]})
>>> new = pd.DataFrame({"model": ["a"], "DSB score": [0.5], "predict_s": [0.31]})
>>> compare_tables(new, old)
('identical', 'timings left out: predict_s')
>>> compare_tables(new.assign(**{"DSB score": [0.5001]}), old)
('differs', 'DSB score: 1 of 1 values differ, largest by 0.0001')
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

#: A column or key that holds a time measured on this machine: ``predict_s``, ``ms/256²``,
#: ``minutes``, ``crops/s``, ``s per image plain``, ``ms_per_image``, ...
TIMING = re.compile(r"(^|[\s_/(])(ms|s|seconds|minutes)([\s_/²)]|$)")

#: Files that hold only measurements of speed or of the run itself (never compared).
TIMING_FILES = (
    "run-log.json",
    "study-state.json",
    "load-timing.json",
    "speed-timing.csv",
    "speed-threads.csv",
    "speed-throughput.csv",
    "speed-sizes.csv",
    "speed-shipping.json",
)

#: Sub-folders that are not results: the model cache (inputs of a verification), executed notebooks.
SKIPPED_FOLDERS = ("models", "executed", "pretrained")
#: Files that are records of the scratch folder itself, not results.
SKIPPED_FILES = (".seeded-from.json", "verify-report.csv")

IDENTICAL, ROUNDING, DIFFERS = "identical", "equal up to float rounding", "differs"
TIMINGS, NEW = "timings (not compared)", "new"

#: Relative difference below which two floats count as the same number computed in another
#: order (another CPU's vector width sums in another order: the last bits differ, no printed digit).
ROUNDING_TOLERANCE = 1e-9

#: Where ``nuclei study --verify`` re-executes (inside the scratch folder, emptied first).
VERIFY_FOLDER = "verify-{profile}"
#: Where ``nuclei study --retrain`` re-executes, training every model again.
RETRAIN_FOLDER = "retrain-{profile}"
REPORT = "verify-report.csv"


def is_timing(name: str) -> bool:
    """Whether a column or key name measures time.

    Examples
    --------
    >>> [is_timing(n) for n in ["predict_s", "ms/256²", "crops/s", "minutes", "s per image plain", "seeds", "DSB score"]]
    [True, True, True, True, True, False, False]
    """
    return bool(TIMING.search(str(name)))


def compare_tables(new: pd.DataFrame, old: pd.DataFrame) -> tuple[str, str]:
    """``(status, detail)`` of one table against its committed version, timing columns left out."""
    timing = [c for c in old.columns if is_timing(c)]
    if list(new.columns) != list(old.columns):
        added, removed = sorted(set(new.columns) - set(old.columns)), sorted(set(old.columns) - set(new.columns))
        return DIFFERS, f"columns differ (new: {added or 'none'}; gone: {removed or 'none'})"
    if new.shape != old.shape:
        return DIFFERS, f"{len(new)} rows, committed {len(old)}"
    left_out = [f"timings left out: {', '.join(timing)}"] if timing else []
    problems, rounding = [], 0.0
    for column in (c for c in old.columns if c not in timing):
        a, b = new[column], old[column]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            same = (a == b) | (a.isna() & b.isna())
            if not same.all():
                gap = (a - b).abs()[~same]
                relative = (gap / b.abs()[~same].clip(lower=1.0)).max()
                if relative <= ROUNDING_TOLERANCE:
                    rounding = max(rounding, relative)
                else:
                    problems.append(
                        f"{column}: {int((~same).sum())} of {len(a)} values differ, largest by {gap.max():.2g}"
                    )
        elif not (a.astype(str) == b.astype(str)).all():
            problems.append(f"{column}: {int((a.astype(str) != b.astype(str)).sum())} of {len(a)} values differ")
    if problems:
        return DIFFERS, "; ".join(problems)
    if rounding:
        return ROUNDING, "; ".join([f"largest relative difference {rounding:.1g}", *left_out])
    return IDENTICAL, "; ".join(left_out)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): value}


def compare_json(new: Any, old: Any) -> tuple[str, str]:
    """``(status, detail)`` of one JSON document against its committed version, timing keys left out.

    Examples
    --------
    >>> compare_json({"a": 1.0, "fit": {"seconds": 3}}, {"a": 1.0, "fit": {"seconds": 5}})
    ('identical', 'timings left out: fit.seconds')
    >>> compare_json({"a": [1, 2]}, {"a": [1, 3]})
    ('differs', 'a.1: 2, committed 3')
    """
    a, b = _flatten(new), _flatten(old)
    timing = sorted(k for k in set(a) | set(b) if any(is_timing(part) for part in k.split(".")))
    problems, rounding = [], 0.0
    for key in sorted((set(a) | set(b)) - set(timing)):
        x, y = a.get(key, "<absent>"), b.get(key, "<absent>")
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
        if x == y or (numbers and math.isnan(x) and math.isnan(y)):
            continue
        relative = abs(x - y) / max(1.0, abs(y)) if numbers else math.inf
        if relative <= ROUNDING_TOLERANCE:
            rounding = max(rounding, relative)
        else:
            problems.append(f"{key}: {x}, committed {y}")
    left_out = [f"timings left out: {', '.join(timing)}"] if timing else []
    if problems:
        return DIFFERS, "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    if rounding:
        return ROUNDING, "; ".join([f"largest relative difference {rounding:.1g}", *left_out])
    return IDENTICAL, "; ".join(left_out)


def result_files(folder: Path, since: float | None = None) -> list[Path]:
    """The CSV and JSON files under ``folder`` (relative paths), outside :data:`SKIPPED_FOLDERS`,
    written at or after ``since`` (a ``time.time()``; ``None``: all)."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        skipped = relative.parts[0] in SKIPPED_FOLDERS or path.name in SKIPPED_FILES
        if path.suffix not in (".csv", ".json") or skipped or not path.is_file():
            continue
        if since is None or path.stat().st_mtime >= since:
            found.append(relative)
    return found


def compare_folders(
    new: str | os.PathLike[str], committed: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]]
) -> pd.DataFrame:
    """One row per file: ``file``, ``status`` (identical, differs, timings, new) and ``detail``.

    Parameters
    ----------
    new : path-like
        The re-executed run's artefact folder.
    committed : path-like
        The published run's folder (``artefacts/<profile>``).
    files : iterable of path-like
        The files to compare, relative to both folders (:func:`result_files` of the new one).
    """
    new, committed = Path(new), Path(committed)
    rows = []
    for name in files:
        name = Path(name)
        if name.name in TIMING_FILES:
            status, detail = TIMINGS, "measures this machine"
        elif not (committed / name).is_file():
            status, detail = NEW, "no committed file of that name"
        elif name.suffix == ".json":
            status, detail = compare_json(_read_json(new / name), _read_json(committed / name))
        else:
            status, detail = compare_tables(pd.read_csv(new / name), pd.read_csv(committed / name))
        rows.append({"file": str(name), "status": status, "detail": detail})
    return pd.DataFrame(rows, columns=["file", "status", "detail"])


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def verdict(table: pd.DataFrame) -> tuple[bool, str]:
    """Whether every compared file is identical or equal up to float rounding (a new file counts as
    a failure), and a one-line summary.

    Examples
    --------
    >>> verdict(pd.DataFrame({"file": ["a.csv", "b.json"], "status": [IDENTICAL, TIMINGS], "detail": ["", ""]}))
    (True, '1 file(s) identical, 0 equal up to float rounding, 0 differ, 0 new; 1 timing file(s) not compared')
    """
    counts = table["status"].value_counts()
    ok = counts.get(DIFFERS, 0) == 0 and counts.get(NEW, 0) == 0
    summary = (
        f"{counts.get(IDENTICAL, 0)} file(s) identical, {counts.get(ROUNDING, 0)} equal up to float rounding, "
        f"{counts.get(DIFFERS, 0)} differ, {counts.get(NEW, 0)} new; {counts.get(TIMINGS, 0)} timing file(s) not compared"
    )
    return ok, summary


def verify_study(
    profile: str,
    *,
    only: Sequence[str] | None = None,
    retrain: bool = False,
    root: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
    progress_bar: bool = True,
) -> tuple[bool, pd.DataFrame, Path]:
    """Re-execute chapters from the committed artefacts and models and compare what they write.

    The chapters run (all, or ``only``) into ``artefacts/lab/verify-<profile>``, emptied first and
    then given a copy of ``artefacts/<profile>`` with its trained models, so nothing is trained
    and the published run is never written to. Every CSV and JSON file the run wrote is compared
    with the committed one (:func:`compare_folders`); the table is also saved as
    ``verify-report.csv`` in that folder.

    With ``retrain``, the run goes into ``artefacts/lab/retrain-<profile>`` and is given the
    committed artefacts *without* the model cache, so every chapter trains its models again from
    scratch with the committed configurations and seeds (hours on a laptop for the ``cpu``
    profile); the report then says how far a retraining moves each table.

    Returns
    -------
    ok : bool
        Every compared file identical.
    table : DataFrame
        One row per written file.
    folder : Path
        The re-executed run's folder.
    """
    from .profiles import SCRATCH
    from .runner import project_root, run_study, seed_scratch

    project = project_root(root)
    folder = project / SCRATCH / (RETRAIN_FOLDER if retrain else VERIFY_FOLDER).format(profile=profile)
    if folder.exists():
        shutil.rmtree(folder)
    if retrain:
        seed_scratch(folder, project / "artefacts" / profile, leave_out=["models"])
    start = time.time()
    run_study(
        profile,
        only=only,
        force=True,
        root=project,
        log=log,
        progress_bar=progress_bar,
        parameters={"artefacts": str(folder.relative_to(project))},
    )
    table = compare_folders(folder, project / "artefacts" / profile, result_files(folder, since=start))
    table.to_csv(folder / REPORT, index=False)
    return verdict(table)[0], table, folder
