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

import dataclasses
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    # End-to-end times and their ratio to the network's time.
    "speed-end-to-end.csv",
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
    # A table indexed by its first column ("s per image" as a row of a summary) times by rows too.
    first = old.columns[0] if len(old.columns) else None
    timed_rows = []
    if first is not None and not pd.api.types.is_numeric_dtype(old[first]):
        rows = old[first].map(is_timing).to_numpy() | new[first].map(is_timing).to_numpy()
        timed_rows = old.loc[rows, first].astype(str).tolist()
        new, old = new[~rows].reset_index(drop=True), old[~rows].reset_index(drop=True)
    left = timing + timed_rows
    left_out = [f"timings left out: {', '.join(left)}"] if left else []
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
    then given a copy of ``artefacts/<profile>`` with its trained models but without the cached
    scores (:mod:`nucleilib.study.scores`), so nothing is trained, every network segments its
    test images again, and the published run is never written to. Every CSV and JSON file the
    run wrote is compared with the committed one (:func:`compare_folders`); the table is also
    saved as ``verify-report.csv`` in that folder.

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
    from .scores import SCORES_FOLDER

    project = project_root(root)
    folder = project / SCRATCH / (RETRAIN_FOLDER if retrain else VERIFY_FOLDER).format(profile=profile)
    if folder.exists():
        shutil.rmtree(folder)
    # Without the cached scores, the chapters segment the test images again with the committed
    # networks, so the check covers the networks' predictions, not only the tables made from them.
    leave_out = ["models", SCORES_FOLDER] if retrain else [SCORES_FOLDER]
    seed_scratch(folder, project / "artefacts" / profile, leave_out=leave_out)
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


#: How far retraining moved each comparison network (``python -m nucleilib.study.reproduce``).
DRIFT_FILE = "retrain-drift.csv"
#: Its columns (one row per retraining, written by :func:`retrain_drift` and :func:`record_drift`).
DRIFT_COLUMNS = (
    "model",
    "seed",
    "committed on",
    "retrained on",
    "weights identical",
    "largest relative weight difference",
    "epochs committed",
    "epochs retrained",
    "committed stopped by time",
    "IoU committed",
    "DSB committed",
    "IoU retrained",
    "DSB retrained",
    "DSB change",
    "IoU change",
)


def committed_model(
    contender: str, seed: int, *, profile: str = "cpu", root: str | os.PathLike[str] | None = None
) -> tuple[Any, dict[str, Any], Path]:
    """The comparison chapter's budget, split and committed cache folder of one network and seed.

    Returns ``(budget, split, folder)``: the chapter's :class:`~nucleilib.training.TrainConfig`
    under ``profile``, the original split's ids and ``artefacts/<profile>/models/<label>-<digest>``.

    Raises
    ------
    StudyError
        When that training is not in the committed model cache.
    """
    from .. import training
    from . import comparison as cmp
    from . import manifest as mf
    from .profiles import notebook_parameters
    from .runner import StudyError, project_root

    params = notebook_parameters("03_comparison", profile)
    committed = project_root(root) / params["artefacts"]
    split = mf.load_splits(committed, ["original"], test_limit=params["test_limit"])["original"]
    budget = training.TrainConfig(
        crop=params["crop"],
        batch_size=params["batch_size"],
        epochs=params["epochs"],
        steps_per_epoch=params["steps_per_epoch"],
        patience=params["patience"],
        max_minutes=params["max_minutes"],
        seed=params["seed"],
    )
    config = cmp.contenders()[contender]
    digest = training.training_digest(cmp.train_config(budget, config, seed), split["train"], split["val"])
    folder = committed / "models" / f"{cmp.run_label(config, 'original', seed)}-{digest}"
    if not (folder / "train-config.json").is_file():
        raise StudyError(f"{folder}: no committed training of {contender} with seed {seed} under profile {profile}")
    return budget, split, folder


def weight_difference(kept: Sequence[Any], again: Sequence[Any]) -> tuple[bool, float]:
    """Whether two weight lists are equal as stored (the retrained one rounded to the committed
    one's dtype, float16 for the larger committed models), and their largest relative difference:
    over the weight tensors, the largest ``|a - b|`` divided by the tensor's largest ``|a|``.

    Examples
    --------
    >>> import numpy as np
    >>> kept = [np.array([0.5, 1.0], np.float16)]
    >>> weight_difference(kept, [np.array([0.50001, 1.0], np.float32)])  # the same after rounding to float16
    (True, 0.0)
    >>> weight_difference(kept, [np.array([0.6, 1.0], np.float32)])
    (False, 0.10009765625)
    """
    import numpy as np

    largest = 0.0
    for a, b in zip(kept, again):
        a = np.asarray(a)
        gap = np.abs(np.asarray(b).astype(a.dtype).astype(np.float64) - a.astype(np.float64)).max()
        largest = max(largest, float(gap / max(float(np.abs(a.astype(np.float64)).max()), 1e-12)))
    return largest == 0.0, largest


def retrain_drift(
    contender: str,
    seed: int,
    *,
    profile: str = "cpu",
    committed_machine: str = "",
    time_limit: bool = False,
    root: str | os.PathLike[str] | None = None,
    log: Callable[[str], Any] | None = print,
) -> dict[str, Any]:
    """Train one comparison network again on this machine and set it against the committed one.

    The training uses the chapter's configuration, split and seed, into a scratch model cache
    (``artefacts/lab/retrain-drift/``, reused when it holds that training already); both networks
    are scored on the original split's test images as in Table 1. Unless ``time_limit``, the
    chapter's time limit is lifted, so that a slower machine still runs every step of the budget
    and the two networks differ by the machine alone, not by the steps it had time for.

    Returns
    -------
    dict
        One row of :data:`DRIFT_FILE`: ``model``, ``seed``, the two machines, whether the weights
        are identical as stored and their largest difference, the epochs run, and the pooled
        ``IoU`` and per-image ``DSB score`` of the committed and the retrained network.
    """
    import numpy as np

    from .. import machine
    from ..models import load_model_folder
    from . import comparison as cmp
    from . import manifest as mf
    from .profiles import SCRATCH
    from .runner import project_root
    from .scores import micro_from_counts

    project = project_root(root)
    budget, split, folder = committed_model(contender, seed, profile=profile, root=project)
    if not time_limit:
        budget = dataclasses.replace(budget, max_minutes=None)
    config = cmp.contenders()[contender]
    samples = mf.load_samples(sorted({*split["train"], *split["val"], *split["test"]}))
    again, info = cmp.train_one(
        contender,
        config,
        "original",
        seed,
        budget=budget,
        split_ids=split,
        samples=samples,
        cache_root=project / SCRATCH / "retrain-drift" / profile,
        log=log,
    )
    kept, _ = load_model_folder(folder)
    with np.load(folder / "weights.npz") as stored:
        kept_weights = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    identical, largest = weight_difference(kept_weights, again.model.get_weights())
    test = [samples[i] for i in split["test"]]
    record = json.loads((folder / "train-config.json").read_text())
    row: dict[str, Any] = {
        "model": contender,
        "seed": seed,
        "committed on": committed_machine or record.get("machine", {}).get("cpu", ""),
        "retrained on": f"{machine.cpu_model()} ({', '.join(machine.cpu_features()) or 'no AVX'})",
        "weights identical": identical,
        "largest relative weight difference": largest,
        "epochs committed": record["epochs_run"],
        "epochs retrained": info["epochs_run"],
        "committed stopped by time": bool(record.get("stopped_by_time", False)),
    }
    for label, model in (("committed", kept), ("retrained", again.model)):
        metrics, _ = cmp.evaluate_one(model, config, test)
        row[f"IoU {label}"] = micro_from_counts(metrics).iou
        row[f"DSB {label}"] = float(metrics["dsb_score"].mean())
    row["DSB change"] = row["DSB retrained"] - row["DSB committed"]
    row["IoU change"] = row["IoU retrained"] - row["IoU committed"]
    return row


def record_drift(row: dict[str, Any], out: str | os.PathLike[str]) -> pd.DataFrame:
    """Add ``row`` to ``out/retrain-drift.csv``, replacing an earlier row of the same model, seed
    and retraining machine; returns the table."""
    path = Path(out) / DRIFT_FILE
    table = pd.DataFrame([row])
    if path.is_file():
        earlier = pd.read_csv(path)
        same = (
            (earlier["model"] == row["model"])
            & (earlier["seed"] == row["seed"])
            & (earlier["retrained on"] == row["retrained on"])
        )
        table = pd.concat([earlier[~same], table], ignore_index=True)
    table = table[
        [c for c in DRIFT_COLUMNS if c in table.columns] + [c for c in table.columns if c not in DRIFT_COLUMNS]
    ]
    partial = path.with_suffix(".partial")
    table.to_csv(partial, index=False)
    os.replace(partial, path)
    return table


def read_drift(out: str | os.PathLike[str]) -> pd.DataFrame:
    """``out/retrain-drift.csv``, or an empty table where no retraining was recorded."""
    path = Path(out) / DRIFT_FILE
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=list(DRIFT_COLUMNS))


def drift_text(drift: pd.DataFrame, per_seed: pd.DataFrame) -> str:
    """One sentence per recorded retraining: machines, weights, DSB change, and whether the
    retrained DSB lies inside the network's range over seeds (``per_seed``: model, DSB score).

    Examples
    --------
    >>> drift = pd.DataFrame({"model": ["X"], "seed": [42], "committed on": ["A"], "retrained on": ["B"],
    ...                       "weights identical": [False], "largest relative weight difference": [0.25],
    ...                       "DSB committed": [0.45], "DSB retrained": [0.47], "DSB change": [0.02]})
    >>> per_seed = pd.DataFrame({"model": ["X", "X", "X"], "DSB score": [0.45, 0.50, 0.48]})
    >>> drift_text(drift, per_seed)  # doctest: +NORMALIZE_WHITESPACE
    'X (seed 42), trained on A, trained again on B: weights not identical (largest relative difference 0.25),
     DSB 0.450 -> 0.470 (+0.020), inside its range over seeds (0.450-0.500)'
    >>> drift_text(drift.iloc[:0], per_seed)
    'no retraining on another machine is recorded for this run'
    """
    sentences = []
    for row in drift.to_dict("records"):
        seeds = per_seed.loc[per_seed["model"] == row["model"], "DSB score"]
        low, high = seeds.min(), seeds.max()
        inside = "inside" if low <= row["DSB retrained"] <= high else "outside"
        weights = (
            "weights identical"
            if bool(row["weights identical"])
            else f"weights not identical (largest relative difference {row['largest relative weight difference']:.2g})"
        )
        sentences.append(
            f"{row['model']} (seed {row['seed']}), trained on {row['committed on']}, trained again on "
            f"{row['retrained on']}: {weights}, DSB {row['DSB committed']:.3f} -> {row['DSB retrained']:.3f} "
            f"({row['DSB change']:+.3f}), {inside} its range over seeds ({low:.3f}-{high:.3f})"
        )
    return "; ".join(sentences) if sentences else "no retraining on another machine is recorded for this run"


def with_retrainings(per_seed: pd.DataFrame, drift: pd.DataFrame) -> pd.DataFrame:
    """``per_seed`` (one row per model and seed) with one more row per recorded retraining: its
    ``DSB score`` and ``IoU`` as retrained, its seed named ``"<seed>, again on <machine>"``, so that
    a comparison over trainings counts the retrainings on other machines as trainings too.

    Examples
    --------
    >>> per_seed = pd.DataFrame({"model": ["X", "X"], "seed": [42, 1], "DSB score": [0.45, 0.50], "IoU": [0.8, 0.9]})
    >>> drift = pd.DataFrame({"model": ["X"], "seed": [42], "retrained on": ["B"], "DSB retrained": [0.52],
    ...                       "IoU retrained": [0.85]})
    >>> with_retrainings(per_seed, drift).values.tolist()
    [['X', 42, 0.45, 0.8], ['X', 1, 0.5, 0.9], ['X', '42, again on B', 0.52, 0.85]]
    """
    again = pd.DataFrame(
        {
            "model": drift["model"],
            "seed": [f"{seed}, again on {where}" for seed, where in zip(drift["seed"], drift["retrained on"])],
            "DSB score": drift["DSB retrained"],
            "IoU": drift["IoU retrained"],
        }
    )
    rows = [per_seed.astype({"seed": object}), again[[c for c in again.columns if c in per_seed.columns]]]
    return pd.concat([frame for frame in rows if not frame.empty], ignore_index=True)


def drift_tolerance(drift: pd.DataFrame, per_seed: pd.DataFrame) -> dict[str, Any]:
    """How far a retraining from scratch moved a network, over every recorded retraining, beside
    how far one network's seeds spread (``per_seed``: model, DSB score, IoU; one row per seed).

    Returns
    -------
    dict
        ``retrainings``; ``identical`` (how many gave weights identical as stored);
        ``largest DSB change`` and ``largest IoU change`` (absolute, over the retrainings);
        ``largest seed SD`` (the largest SD over seeds of the DSB score among the retrained
        networks) and ``all inside seed range`` (every retrained DSB score within its network's
        range over seeds). NaN and False when nothing was retrained.

    Examples
    --------
    >>> drift = pd.DataFrame({"model": ["X", "Y"], "weights identical": [False, True],
    ...                       "DSB retrained": [0.47, 0.40], "DSB change": [0.02, 0.0], "IoU change": [-0.01, 0.0]})
    >>> per_seed = pd.DataFrame({"model": ["X", "X", "Y", "Y"], "DSB score": [0.45, 0.50, 0.40, 0.40]})
    >>> tolerance = drift_tolerance(drift, per_seed)
    >>> tolerance["retrainings"], tolerance["identical"], tolerance["largest DSB change"], tolerance["largest IoU change"]
    (2, 1, 0.02, 0.01)
    >>> round(tolerance["largest seed SD"], 3), tolerance["all inside seed range"]
    (0.035, True)
    """
    retrained = set(drift["model"])
    seeds = per_seed[per_seed["model"].isin(retrained)].groupby("model")["DSB score"]
    inside = [
        seeds.min()[row["model"]] <= row["DSB retrained"] <= seeds.max()[row["model"]]
        for row in drift.to_dict("records")
        if row["model"] in seeds.groups
    ]
    empty = drift.empty
    return {
        "retrainings": len(drift),
        "identical": int(drift["weights identical"].astype(bool).sum()) if not empty else 0,
        "largest DSB change": float(drift["DSB change"].abs().max()) if not empty else math.nan,
        "largest IoU change": float(drift["IoU change"].abs().max()) if not empty else math.nan,
        "largest seed SD": float(seeds.std().max()) if not empty else math.nan,
        "all inside seed range": bool(inside) and all(inside),
    }


def tolerance_text(tolerance: Mapping[str, Any]) -> str:
    """The retraining tolerance of :func:`drift_tolerance` in one sentence, for the book.

    Examples
    --------
    >>> print(tolerance_text({"retrainings": 3, "identical": 1, "largest DSB change": 0.0157,
    ...                       "largest IoU change": 0.0162, "largest seed SD": 0.042, "all inside seed range": True}))
    ... # doctest: +NORMALIZE_WHITESPACE
    3 retrainings from scratch (1 with identical weights) moved the DSB score by at most 0.016 and the pooled
    IoU by at most 0.016, against SDs over seeds of up to 0.042; every retrained score lies inside its
    network's range over seeds
    >>> tolerance_text({"retrainings": 0})
    'no retraining is recorded, so no tolerance is measured'
    """
    if not tolerance.get("retrainings"):
        return "no retraining is recorded, so no tolerance is measured"
    where = (
        "every retrained score lies inside its network's range over seeds"
        if tolerance["all inside seed range"]
        else "not every retrained score lies inside its network's range over seeds"
    )
    return (
        f"{tolerance['retrainings']} retrainings from scratch ({tolerance['identical']} with identical weights) "
        f"moved the DSB score by at most {tolerance['largest DSB change']:.3f} and the pooled IoU by at most "
        f"{tolerance['largest IoU change']:.3f}, against SDs over seeds of up to {tolerance['largest seed SD']:.3f}; "
        f"{where}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nucleilib.study.reproduce``: retrain one comparison network and record its drift."""
    import argparse

    from .runner import set_study_environment

    set_study_environment()  # before comparison imports TensorFlow: the chapters' kernels
    from . import comparison as cmp

    parser = argparse.ArgumentParser(prog="python -m nucleilib.study.reproduce", description=main.__doc__)
    parser.add_argument("--model", choices=list(cmp.contenders()), default="ResUNet")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument(
        "--committed-machine", default="", help="where the committed model was trained, when its record lacks it"
    )
    parser.add_argument(
        "--time-limit",
        action="store_true",
        help="keep the chapter's time limit (by default every step of the budget is run, however slow the machine)",
    )
    args = parser.parse_args(argv)
    from .runner import project_root

    row = retrain_drift(
        args.model,
        args.seed,
        profile=args.profile,
        committed_machine=args.committed_machine,
        time_limit=args.time_limit,
    )
    table = record_drift(row, project_root() / "artefacts" / args.profile)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
