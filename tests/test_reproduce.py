"""Comparing a re-executed run with the committed one (nuclei study --verify)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from nucleilib.study import reproduce


def _write(folder: Path, name: str, frame: pd.DataFrame | dict) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(frame, dict):
        path.write_text(json.dumps(frame))
    else:
        frame.to_csv(path, index=False)
    return path


TABLE = pd.DataFrame({"model": ["U-Net", "ResUNet"], "DSB score": [0.519, 0.448], "ms/256²": [38.5, 78.6]})


def test_compare_folders_reports_each_kind_of_file(tmp_path: Path) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    _write(old, "table1.csv", TABLE)
    _write(new, "table1.csv", TABLE.assign(**{"ms/256²": [40.0, 80.0]}))  # only the timing moved
    _write(old, "sub/per-image.csv", TABLE)
    _write(new, "sub/per-image.csv", TABLE.assign(**{"DSB score": [0.519, 0.4481]}))
    _write(old, "claims.json", {"iou": 0.88, "fit": {"seconds": 3.0}})
    _write(new, "claims.json", {"iou": 0.88, "fit": {"seconds": 9.0}})
    _write(new, "speed-timing.csv", TABLE)
    _write(new, "extra.csv", TABLE)
    _write(new, "models/cmp-x/history.csv", TABLE)  # the model cache is an input, not a result
    _write(new, ".seeded-from.json", {"files": 3})  # the scratch folder's own record
    files = reproduce.result_files(new)
    assert [str(f) for f in files] == [
        "claims.json",
        "extra.csv",
        "speed-timing.csv",
        "sub/per-image.csv",
        "table1.csv",
    ]
    table = reproduce.compare_folders(new, old, files).set_index("file")
    assert table["status"].to_dict() == {
        "claims.json": reproduce.IDENTICAL,
        "extra.csv": reproduce.NEW,
        "speed-timing.csv": reproduce.TIMINGS,
        "sub/per-image.csv": reproduce.DIFFERS,
        "table1.csv": reproduce.IDENTICAL,
    }
    assert table.loc["sub/per-image.csv", "detail"] == "DSB score: 1 of 2 values differ, largest by 0.0001"
    assert table.loc["table1.csv", "detail"] == "timings left out: ms/256²"
    ok, summary = reproduce.verdict(table.reset_index())
    assert not ok and summary == (
        "2 file(s) identical, 0 equal up to float rounding, 1 differ, 1 new; 1 timing file(s) not compared"
    )


def test_compare_tables_names_changed_columns_rows_and_text() -> None:
    status, detail = reproduce.compare_tables(TABLE.drop(columns="DSB score"), TABLE)
    assert status == reproduce.DIFFERS and "gone: ['DSB score']" in detail
    assert reproduce.compare_tables(TABLE.iloc[:1], TABLE) == (reproduce.DIFFERS, "1 rows, committed 2")
    renamed = TABLE.assign(model=["U-Net", "DeepLabV3+"])
    assert reproduce.compare_tables(renamed, TABLE) == (reproduce.DIFFERS, "model: 1 of 2 values differ")
    with_nan = TABLE.assign(**{"DSB score": [float("nan"), 0.448]})
    assert reproduce.compare_tables(with_nan, with_nan.copy())[0] == reproduce.IDENTICAL


def test_result_files_since_keeps_only_what_the_run_wrote(tmp_path: Path) -> None:
    old = _write(tmp_path, "copied.csv", TABLE)
    os.utime(old, (time.time() - 3600, time.time() - 3600))  # a seeded copy keeps its committed time
    start = time.time()
    _write(tmp_path, "written.csv", TABLE)
    assert [str(f) for f in reproduce.result_files(tmp_path, since=start)] == ["written.csv"]


def test_verify_study_reexecutes_into_scratch_and_compares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nucleilib.study import runner

    (tmp_path / "notebooks").mkdir()
    committed = tmp_path / "artefacts" / "cpu"
    _write(committed, "table1.csv", TABLE)
    _write(committed, "table2.csv", TABLE)
    _write(committed / "models" / "unet-original-0123", "history.csv", TABLE)
    _write(committed / "scores", "unet-0123.csv", TABLE)
    stale = _write(tmp_path / "artefacts/lab/verify-cpu", "leftover.csv", TABLE)
    calls = []

    def fake_run_study(profile, *, only, force, root, log, progress_bar, parameters):
        calls.append((profile, only, force, parameters))
        folder = Path(root) / parameters["artefacts"]
        # the trained models are there, the cached scores are not: every network segments again
        assert (folder / "models" / "unet-original-0123" / "history.csv").is_file()
        assert not (folder / "scores").exists()
        _write(folder, "table1.csv", TABLE)
        _write(folder, "table2.csv", TABLE.assign(**{"DSB score": [0.5, 0.4]}))
        return []

    monkeypatch.setattr(runner, "run_study", fake_run_study)
    monkeypatch.setattr(runner, "project_root", lambda root=None: tmp_path)
    ok, table, folder = reproduce.verify_study("cpu", only=["03_comparison"], log=lambda line: None)
    assert calls == [("cpu", ["03_comparison"], True, {"artefacts": "artefacts/lab/verify-cpu"})]
    assert folder == tmp_path / "artefacts/lab/verify-cpu" and not stale.exists()
    assert not ok and table.set_index("file")["status"].to_dict() == {
        "table1.csv": reproduce.IDENTICAL,
        "table2.csv": reproduce.DIFFERS,
    }
    assert pd.read_csv(folder / reproduce.REPORT).equals(table)
    assert pd.read_csv(committed / "table2.csv").equals(TABLE)  # the published run is untouched


def test_last_bit_differences_are_rounding_and_anything_more_differs() -> None:
    # 01_eda's circularity percentile, committed on an Intel Xeon and re-executed on an AMD EPYC.
    committed = {"circularity_p5": 0.6056500068378003, "n": 664}
    assert reproduce.compare_json({"circularity_p5": 0.6056500068378005, "n": 664}, committed) == (
        reproduce.ROUNDING,
        "largest relative difference 1e-16",
    )
    assert reproduce.compare_json({"circularity_p5": 0.6057, "n": 664}, committed)[0] == reproduce.DIFFERS
    assert reproduce.compare_json({"circularity_p5": "0.6", "n": 664}, committed)[0] == reproduce.DIFFERS
    close = TABLE.assign(**{"DSB score": [0.519 * (1 + 1e-13), 0.448]})
    assert reproduce.compare_tables(close, TABLE) == (
        reproduce.ROUNDING,
        "largest relative difference 5e-14; timings left out: ms/256²",
    )
    ok, _ = reproduce.verdict(pd.DataFrame({"file": ["a.csv"], "status": [reproduce.ROUNDING], "detail": [""]}))
    assert ok


def test_retrain_starts_from_the_committed_artefacts_without_the_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nucleilib.study import runner

    committed = tmp_path / "artefacts" / "cpu"
    _write(committed, "manifest.csv", TABLE)
    _write(committed, "table1.csv", TABLE)
    _write(committed, "models/cmp-unet-original-s42-0123/history.csv", TABLE)
    seen = {}

    def fake_run_study(profile, *, only, force, root, log, progress_bar, parameters):
        folder = Path(root) / parameters["artefacts"]
        seen["models"] = sorted(p.name for p in (folder / "models").glob("*")) if (folder / "models").exists() else []
        seen["manifest"] = (folder / "manifest.csv").is_file()
        _write(folder, "table1.csv", TABLE.assign(**{"DSB score": [0.5, 0.47]}))  # retrained: numbers move
        return []

    monkeypatch.setattr(runner, "run_study", fake_run_study)
    monkeypatch.setattr(runner, "project_root", lambda root=None: tmp_path)
    ok, table, folder = reproduce.verify_study("cpu", retrain=True, log=lambda line: None)
    assert folder == tmp_path / "artefacts/lab/retrain-cpu"
    assert seen == {"models": [], "manifest": True}  # every model trains again; the data chapter's tables are there
    assert not ok and table["status"].tolist() == [reproduce.DIFFERS]
    assert "DSB score: 2 of 2 values differ, largest by 0.022" in table.loc[0, "detail"]
    assert (committed / "models/cmp-unet-original-s42-0123/history.csv").is_file()


@pytest.mark.parametrize(
    ("flags", "ok", "status"), [(["--verify"], True, 0), (["--verify"], False, 1), (["--retrain"], False, 0)]
)
def test_the_study_command_verifies_and_retrains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, flags, ok, status
) -> None:
    from nucleilib import cli

    calls = []

    def fake_verify(profile, *, only, retrain, progress_bar):
        calls.append((profile, only, retrain))
        rows = [{"file": "table1.csv", "status": reproduce.IDENTICAL if ok else reproduce.DIFFERS, "detail": ""}]
        return ok, pd.DataFrame(rows), tmp_path

    monkeypatch.setattr(reproduce, "verify_study", fake_verify)
    assert cli.main(["study", *flags, "--only", "03_comparison", "--no-progress"]) == status
    assert calls == [("cpu", ["03_comparison"], flags == ["--retrain"])]
    out = capsys.readouterr().out
    assert "table1.csv" in out and f"{flags[0][2:]} (cpu): " in out
    with pytest.raises(SystemExit, match="take no -p"):
        cli.main(["study", *flags, "-p", "seed", "1"])


@pytest.mark.parametrize("seed", [42, 1, 2])
@pytest.mark.parametrize("contender", ["U-Net", "ResUNet", "DeepLabV3+"])
def test_every_comparison_training_is_committed(contender: str, seed: int) -> None:
    # The chapter's configurations, split and seeds name these folders: re-executing it trains nothing.
    budget, split, folder = reproduce.committed_model(contender, seed)
    assert (folder / "weights.npz").is_file() and budget.epochs == 20 and len(split["test"]) > 0


def test_a_training_that_is_not_committed_is_named() -> None:
    from nucleilib.study.runner import StudyError

    with pytest.raises(StudyError, match="no committed training of ResUNet with seed 7"):
        reproduce.committed_model("ResUNet", 7)


def test_record_drift_replaces_the_same_model_seed_and_machine(tmp_path: Path) -> None:
    row = {"model": "ResUNet", "seed": 42, "retrained on": "AMD EPYC (avx2)", "DSB change": -0.01}
    reproduce.record_drift(row, tmp_path)
    reproduce.record_drift(dict(row, **{"retrained on": "Intel Xeon (avx2, avx512f)"}), tmp_path)
    table = reproduce.record_drift(dict(row, **{"DSB change": 0.02}), tmp_path)
    assert table[["retrained on", "DSB change"]].values.tolist() == [
        ["Intel Xeon (avx2, avx512f)", -0.01],
        ["AMD EPYC (avx2)", 0.02],
    ]
    assert pd.read_csv(tmp_path / reproduce.DRIFT_FILE).equals(table)


def test_a_timing_row_of_a_summary_is_left_out() -> None:
    # 02_unet's unet-test-rescaled.csv: settings in columns, metrics in rows, one of them a time.
    committed = pd.DataFrame({"": ["DSB", "s per image"], "own scale": [0.579, 0.223]})
    again = committed.assign(**{"own scale": [0.579, 0.475]})
    assert reproduce.compare_tables(again, committed) == (reproduce.IDENTICAL, "timings left out: s per image")
    moved = committed.assign(**{"own scale": [0.6, 0.223]})
    assert reproduce.compare_tables(moved, committed)[0] == reproduce.DIFFERS


def test_the_tolerance_names_a_retraining_outside_its_seed_range() -> None:
    per_seed = pd.DataFrame({"model": ["X"] * 3 + ["Y"] * 3, "DSB score": [0.45, 0.50, 0.48, 0.30, 0.31, 0.32]})
    drift = pd.DataFrame(
        {
            "model": ["X", "Y"],
            "weights identical": [False, False],
            "DSB retrained": [0.47, 0.36],
            "DSB change": [0.02, -0.05],
            "IoU change": [0.01, -0.03],
        }
    )
    tolerance = reproduce.drift_tolerance(drift, per_seed)
    assert tolerance["largest DSB change"] == 0.05 and tolerance["largest IoU change"] == 0.03
    assert not tolerance["all inside seed range"]
    assert "not every retrained score" in reproduce.tolerance_text(tolerance)
    assert reproduce.drift_tolerance(drift.iloc[:1], per_seed)["all inside seed range"]
    nothing = reproduce.drift_tolerance(drift.iloc[:0], per_seed)
    assert nothing["retrainings"] == 0 and "no tolerance" in reproduce.tolerance_text(nothing)


@pytest.mark.parametrize("time_limit", [False, True])
def test_a_retraining_runs_the_whole_budget_unless_asked_to_keep_the_time_limit(
    time_limit: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nucleilib.study import comparison as cmp

    budgets = []

    class Stop(Exception):
        pass

    def train_one(*args, budget, **kwargs):
        budgets.append(budget)
        raise Stop

    monkeypatch.setattr(cmp, "train_one", train_one)
    monkeypatch.setattr("nucleilib.study.manifest.load_samples", lambda ids: {})
    with pytest.raises(Stop):
        reproduce.retrain_drift("U-Net", 42, time_limit=time_limit, log=None)
    committed_budget, _, _ = reproduce.committed_model("U-Net", 42)
    assert committed_budget.max_minutes and budgets[0].max_minutes == (
        committed_budget.max_minutes if time_limit else None
    )


def test_retrainings_count_as_trainings_when_networks_are_ordered(tmp_path: Path) -> None:
    from nucleilib.study import spread

    per_seed = pd.DataFrame(
        {"model": ["A"] * 2 + ["B"] * 2, "seed": [42, 1] * 2, "DSB score": [0.52, 0.53, 0.49, 0.50], "IoU": [0.8] * 4}
    )
    nothing = reproduce.read_drift(tmp_path)  # no retraining recorded: the seeds alone
    assert reproduce.with_retrainings(per_seed, nothing).equals(per_seed.astype({"seed": object}))
    assert spread.seed_separation(reproduce.with_retrainings(per_seed, nothing))["apart"].tolist() == [True]
    row = {"model": "A", "seed": 42, "retrained on": "AMD EPYC (avx2)", "DSB retrained": 0.495, "IoU retrained": 0.8}
    reproduce.record_drift(row, tmp_path)
    trainings = reproduce.with_retrainings(per_seed, reproduce.read_drift(tmp_path))
    assert trainings["seed"].tolist()[-1] == "42, again on AMD EPYC (avx2)"
    # A's retraining scores below B's best seed: the two no longer count as ordered.
    assert spread.seed_separation(trainings)["apart"].tolist() == [False]
