"""The study runner (nucleilib.study.runner), profiles and the study's commands, on a tiny project
built in tmp_path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nucleilib import cli
from nucleilib.study import profiles, runner

NOTEBOOK = """# %% tags=["parameters"]
profile = "cpu"
artefacts = "artefacts/cpu"
seed = 0
max_images = None
measure_load_time = True

# %%
from pathlib import Path
Path(artefacts).mkdir(parents=True, exist_ok=True)
(Path(artefacts) / "ran.txt").open("a").write(f"{profile} {max_images}\\n")
print(f"profile={profile} max_images={max_images}")
import os
print("onednn=" + os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"))
from nucleilib.progress import report
report("long work: 1 of 1")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text("title: test\n")
    (tmp_path / "_toc.yml").write_text("root: book/intro\nchapters:\n  - file: book/cpu/01_eda\n")
    (tmp_path / "notebooks" / "01_eda.py").write_text(NOTEBOOK)
    return tmp_path


def run(project: Path, **kwargs):
    lines: list[str] = []
    runs = runner.run_study("smoke", root=project, only=["01_eda"], log=lines.append, progress_bar=False, **kwargs)
    return runs, lines


def times_ran(project: Path) -> int:
    marker = project / "artefacts" / "smoke" / "ran.txt"
    return len(marker.read_text().splitlines()) if marker.exists() else 0


@pytest.mark.slow
def test_runner_injects_profile_parameters_and_writes_into_the_book(project: Path) -> None:
    runs, lines = run(project)
    assert [r.status for r in runs] == ["ran"]
    output = project / "book" / "smoke" / "01_eda.ipynb"
    assert runs[0].output == output
    notebook = nbformat.read(output, as_version=4)
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
    expected = profiles.notebook_parameters("01_eda", "smoke")
    assert f"profile=smoke max_images={expected['max_images']}" in printed
    assert "onednn=1" in printed, "the kernels run without oneDNN (DeepLabV3+ cannot train on AVX2-only CPUs)"
    assert any("done in" in line for line in lines)
    # Progress of long work goes to the terminal and to a log beside the executed notebook, not into it.
    progress = (project / "book" / "smoke" / "01_eda.progress.log").read_text()
    assert progress.splitlines()[-1].endswith(" long work: 1 of 1") and "long work" not in printed
    state = json.loads((project / "artefacts" / "smoke" / runner.STATE_FILE).read_text())
    assert state["01_eda"]["parameters"] == expected
    assert not list((project / "book" / "smoke").glob(".*input*")), "staged input notebook left behind"
    tags = [c.metadata.get("tags", []) for c in notebook.cells]
    # The book shows the injected values the run used, not the defaults as well.
    assert ["parameters", "remove-cell"] in tags and ["injected-parameters"] in tags


@pytest.mark.slow
def test_unchanged_notebook_is_skipped_changed_or_forced_runs_again(project: Path) -> None:
    run(project)
    runs, lines = run(project)
    assert [r.status for r in runs] == ["skipped"] and "skipped" in lines[0]
    assert times_ran(project) == 1
    source = project / "notebooks" / "01_eda.py"
    source.write_text(source.read_text() + "\n# %%\nprint('changed')\n")
    runs, _ = run(project)
    assert [r.status for r in runs] == ["ran"] and times_ran(project) == 2
    runs, _ = run(project, force=True)
    assert [r.status for r in runs] == ["ran"] and times_ran(project) == 3


@pytest.mark.slow
def test_run_log_records_the_last_successful_run_and_keeps_other_notebooks(project: Path) -> None:
    log_path = project / "artefacts" / "smoke" / runner.RUN_LOG
    log_path.parent.mkdir(parents=True)
    earlier = {
        "seconds": 1800.0,
        "finished_utc": "2026-01-01T00:00:00+00:00",
        "git_commit": "abc",
        "machine": {"cpu": "x", "cores": 2, "gpu": "none"},
    }
    log_path.write_text(json.dumps({"02_unet": earlier}))
    run(project)
    log = json.loads(log_path.read_text())
    assert log["02_unet"] == earlier, "a notebook that did not run keeps its entry"
    entry = log["01_eda"]
    assert set(entry) == {"seconds", "finished_utc", "git_commit", "machine"}
    assert entry["seconds"] > 0 and entry["finished_utc"].endswith("+00:00")
    assert entry["machine"]["cores"] >= 1 and entry["machine"]["cpu"] and entry["machine"]["gpu"]
    assert entry["git_commit"]
    run(project)  # skipped: the log is left as it is
    assert json.loads(log_path.read_text())["01_eda"] == entry
    source = project / "notebooks" / "01_eda.py"
    source.write_text(NOTEBOOK + "\n# %%\nraise RuntimeError('deliberate failure')\n")
    with pytest.raises(runner.StudyError):
        run(project)
    assert json.loads(log_path.read_text())["01_eda"] == entry, "a failed run is not logged"


def test_record_run_merges_into_the_log(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    path = tmp_path / "artefacts" / "cpu" / runner.RUN_LOG
    machine = {"cpu": "Test CPU", "cores": 2, "gpu": "none"}
    finished = datetime(2026, 3, 1, 13, 30, tzinfo=timezone(timedelta(hours=1)))
    runner.record_run(path, "01_eda", 60.04, machine=machine, root=tmp_path, finished=finished)
    runner.record_run(path, "02_unet", 1700.0, machine=machine, root=tmp_path)
    log = runner.record_run(path, "01_eda", 58.0, machine=machine, root=tmp_path, finished=finished)
    assert json.loads(path.read_text()) == log
    assert sorted(log) == ["01_eda", "02_unet"]
    assert log["01_eda"]["seconds"] == 58.0
    assert log["01_eda"]["finished_utc"] == "2026-03-01T12:30:00+00:00"
    assert log["01_eda"]["machine"] == machine
    assert log["01_eda"]["git_commit"] == "unknown (not a git checkout)"
    path.write_text("{damaged")
    assert sorted(runner.record_run(path, "01_eda", 1.0, machine=machine)) == ["01_eda"]
    log["07_audit"] = log["02_unet"]  # the audit's entry from before it became chapter 08
    path.write_text(json.dumps(log))
    assert sorted(runner.record_run(path, "02_unet", 1.0, machine=machine)) == ["01_eda", "02_unet"]


def test_machine_info_names_cpu_cores_and_gpu() -> None:
    info = runner.machine_info()
    assert info["cpu"] and info["cores"] == os.cpu_count() and info["gpu"]


@pytest.mark.slow
def test_missing_output_notebook_is_run_again(project: Path) -> None:
    run(project)
    (project / "book" / "smoke" / "01_eda.ipynb").unlink()
    runs, _ = run(project)
    assert [r.status for r in runs] == ["ran"]


@pytest.mark.slow
def test_failing_notebook_names_itself_and_is_not_recorded(project: Path) -> None:
    source = project / "notebooks" / "01_eda.py"
    source.write_text(NOTEBOOK + "\n# %%\nraise RuntimeError('deliberate failure')\n")
    with pytest.raises(runner.StudyError, match=r"notebook 01_eda failed.*RuntimeError.*deliberate failure"):
        run(project)
    state_path = project / "artefacts" / "smoke" / runner.STATE_FILE
    assert "01_eda" not in json.loads(state_path.read_text())


FIGURE_CELL = """
# %% mystnb={"figure": {"caption": "Two outputs.", "name": "fig-two"}}
from IPython.display import display
display("a table")
"a figure"
"""


@pytest.mark.slow
def test_a_figure_cell_with_two_outputs_fails_the_run_naming_the_figure(project: Path) -> None:
    (project / "notebooks" / "01_eda.py").write_text(NOTEBOOK + FIGURE_CELL)
    with pytest.raises(runner.StudyError, match=r"notebook 01_eda: figure fig-two \(cell \d+\) shows 2 rich outputs"):
        run(project)
    assert "01_eda" not in json.loads((project / "artefacts" / "smoke" / runner.STATE_FILE).read_text())


@pytest.mark.slow
def test_kernels_draw_figures_into_the_book_even_under_mplbackend_agg(project: Path, monkeypatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    (project / "notebooks" / "01_eda.py").write_text(
        NOTEBOOK
        + """
# %% mystnb={"figure": {"caption": "A line.", "name": "fig-line"}}
import matplotlib.pyplot as plt
from myst_nb import glue
glue("answer", 42, display=False)
plt.plot([0, 1], [0, 1])
plt.show()
"""
    )
    run(project)
    notebook = nbformat.read(project / "book" / "smoke" / "01_eda.ipynb", as_version=4)
    ((index, _),) = runner.figure_cells(notebook)
    assert ["image/png" in o.get("data", {}) for o in notebook.cells[index].outputs].count(True) == 1
    assert runner.figure_problems(notebook) == []  # the glue record is not a second output
    assert os.environ["MPLBACKEND"] == "Agg"  # restored for the caller


def _figure_notebook(options, outputs):
    cell = nbformat.v4.new_code_cell("x", metadata={"mystnb": {"figure": options}} if options is not None else {})
    cell.outputs = [
        nbformat.v4.new_output(kind, data={"text/plain": "x"})
        if kind != "stream"
        else nbformat.v4.new_output("stream", text="printed")
        for kind in outputs
    ]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"), cell])


@pytest.mark.parametrize(
    ("options", "outputs", "problem"),
    [
        ({"caption": "A map.", "name": "fig-map"}, ["display_data"], None),
        ({"caption": "A map.", "name": "fig-map"}, [], None),  # a figure drawn only in some profiles
        ({"caption": "A map.", "name": "fig-map"}, ["stream", "display_data", "stream"], None),
        ({"caption": "A map.", "name": "fig-map"}, ["display_data", "execute_result"], "shows 2 rich outputs"),
        ({"caption": "", "name": "fig-map"}, ["display_data"], "fig-map \\(cell 1\\): no caption"),
        ({"caption": "A map.", "name": "map"}, ["display_data"], "must start with 'fig-'"),
        (None, ["display_data", "display_data"], None),  # not a figure cell
    ],
)
def test_figure_problems(options, outputs, problem) -> None:
    found = runner.figure_problems(_figure_notebook(options, outputs))
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1
        assert re.search(problem, found[0])


def test_figure_cells_lists_index_and_options() -> None:
    notebook = _figure_notebook({"caption": "A map.", "name": "fig-map"}, ["display_data"])
    assert runner.figure_cells(notebook) == [(1, {"caption": "A map.", "name": "fig-map"})]


def test_missing_notebook_source_is_a_clear_error(project: Path) -> None:
    (project / "notebooks" / "01_eda.py").unlink()
    with pytest.raises(runner.StudyError, match=r"01_eda\.py: notebook source is missing"):
        run(project)


def test_project_root_is_found_from_a_subfolder(project: Path) -> None:
    sub = project / "book" / "cpu"
    sub.mkdir(parents=True)
    assert runner.project_root(sub) == project.resolve()


def test_outside_the_project_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(runner.StudyError, match="not inside the nuclei project"):
        runner.project_root(tmp_path)


def test_toc_for_other_profiles_points_at_their_notebooks(project: Path) -> None:
    toc = runner.toc_for_profile("smoke", project).read_text()
    assert "book/smoke/01_eda" in toc and "book/cpu/" not in toc


def test_book_refuses_a_profile_that_has_not_run(project: Path) -> None:
    with pytest.raises(runner.StudyError, match=r"book/gpu: no executed notebook for 01_eda"):
        runner.build_book("gpu", root=project)


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_every_profile_gives_every_notebook_its_parameters(profile: str) -> None:
    for name in profiles.NOTEBOOKS:
        params = profiles.notebook_parameters(name, profile)
        assert params["profile"] == profile
        assert params["artefacts"] == f"artefacts/{profile}"


def test_profile_parameters_match_the_notebook_parameter_cells() -> None:
    """Papermill silently adds unknown parameters; catch a misspelt one here."""
    root = Path(__file__).resolve().parents[1]
    for name in profiles.NOTEBOOKS:
        declared = set(runner.chapter_parameters(root / "notebooks" / f"{name}.py"))
        for profile in profiles.PROFILES:
            assert set(profiles.notebook_parameters(name, profile)) <= declared, (name, profile)


def test_smoke_is_smaller_than_cpu() -> None:
    smoke = profiles.notebook_parameters("01_eda", "smoke")
    cpu = profiles.notebook_parameters("01_eda", "cpu")
    assert smoke["max_images"] is not None and cpu["max_images"] is None


@pytest.mark.parametrize("bad", [("nope", "01_eda"), ("smoke", "99_missing")])
def test_unknown_profile_or_notebook_is_refused(bad: tuple[str, str]) -> None:
    profile, name = bad
    with pytest.raises(ValueError, match="unknown"):
        profiles.notebook_parameters(name, profile)


def test_run_info_states_profile_hardware_versions_and_commit() -> None:
    info = runner.run_info("smoke")
    assert info["profile"] == "smoke"
    for key in ("CPU", "CPU cores", "GPU", "Python", "tensorflow", "git commit"):
        assert info[key], key


def test_cli_reports_a_missing_data_folder_in_one_line(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setenv("NUCLEI_DATA_DIR", str(tmp_path / "absent"))
    assert cli.main(["fetch"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("nuclei: error:") and "absent" in err and "\n" not in err


def test_cli_rejects_an_unknown_profile(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["study", "--profile", "huge"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("nuclei")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("nuclei ")


def test_commit_is_marked_only_when_code_differs_from_it(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    for relative in (
        "nucleilib/study/runner.py",
        "notebooks/01_eda.py",
        "book/cpu/01_eda.ipynb",
        "artefacts/cpu/log.json",
        "nucleilib/pretrained/unet/card.json",
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("v1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    clean = runner._git_commit(tmp_path / "nucleilib")
    assert re.fullmatch(r"[0-9a-f]{12}", clean)
    # What a run writes itself does not mark the commit...
    for relative in ("book/cpu/01_eda.ipynb", "artefacts/cpu/log.json", "nucleilib/pretrained/unet/card.json"):
        (tmp_path / relative).write_text("v2\n")
    assert runner._git_commit(tmp_path / "nucleilib") == clean
    # ...a change of the code or of a chapter's source does.
    (tmp_path / "notebooks" / "01_eda.py").write_text("v2\n")
    assert runner._git_commit(tmp_path) == clean + " (with uncommitted changes)"


def test_the_study_commands_dispatch_to_the_runner(monkeypatch, capsys, tmp_path: Path) -> None:
    calls = []

    def fake_run_study(profile, *, only=None, force=False, progress_bar=True, parameters=None):
        calls.append(("study", profile, only, force, progress_bar, parameters))
        return []

    def fake_build_book(profile, *, strict=True):
        calls.append(("book", profile, strict))
        return tmp_path / "html"

    monkeypatch.setattr(runner, "run_study", fake_run_study)
    monkeypatch.setattr(runner, "build_book", fake_build_book)
    assert cli.main(["study", "--profile", "smoke", "--only", "01_eda", "--force", "--no-progress"]) == 0
    assert cli.main(["book", "--profile", "smoke", "--no-strict"]) == 0
    assert cli.main(["study", "--only", "01_eda", "-p", "max_images", "7", "-p", "artefacts", "artefacts/x"]) == 0
    assert calls == [
        ("study", "smoke", ["01_eda"], True, False, {}),
        ("book", "smoke", False),
        ("study", "cpu", ["01_eda"], False, True, {"max_images": 7, "artefacts": "artefacts/x"}),
    ]
    out = capsys.readouterr().out
    assert "study (smoke): 0 notebook(s) run" in out and str(tmp_path / "html" / "index.html") in out


def test_rescore_reaches_the_chapters_kernels_through_the_environment(monkeypatch) -> None:
    import os

    from nucleilib.study import scores

    seen = []
    monkeypatch.setenv(scores.RESCORE_ENV, "0")  # restored (to unset, as a rule) after the test
    monkeypatch.setattr(runner, "run_study", lambda profile, **kwargs: seen.append(scores.rescore_requested()) or [])
    assert cli.main(["study", "--only", "02_unet"]) == 0
    assert cli.main(["study", "--only", "02_unet", "--rescore"]) == 0
    assert seen == [False, True] and os.environ[scores.RESCORE_ENV] == "1"


def test_a_study_error_is_one_line_from_the_command(monkeypatch, capsys) -> None:
    def failing(profile, **kwargs):
        raise runner.StudyError("notebook 01_eda failed: deliberate")

    monkeypatch.setattr(runner, "run_study", failing)
    assert cli.main(["study", "--profile", "smoke"]) == 1
    assert capsys.readouterr().err.strip() == "nuclei: error: notebook 01_eda failed: deliberate"


@pytest.mark.slow
def test_one_off_parameters_run_in_the_scratch_folder_and_leave_the_published_run(project: Path) -> None:
    run(project)
    published = (project / "book" / "smoke" / "01_eda.ipynb").read_bytes()
    runs, lines = run(project, parameters={"max_images": 7})
    scratch = project / profiles.SCRATCH
    assert runs[0].status == "ran" and runs[0].output == scratch / "executed" / "01_eda.ipynb"
    notebook = nbformat.read(runs[0].output, as_version=4)
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "profile=smoke max_images=7" in printed and "published run stays as it is" in lines[0]
    assert (scratch / "ran.txt").read_text() == "smoke 7\n"
    assert times_ran(project) == 1, "the published run's artefacts were written"
    assert (project / "book" / "smoke" / "01_eda.ipynb").read_bytes() == published
    assert json.loads((scratch / runner.STATE_FILE).read_text())["01_eda"]["parameters"]["max_images"] == 7
    assert not (project / "artefacts" / "smoke" / runner.RUN_LOG).read_text().count("lab")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_imgs": 7}, "no chosen chapter .* has the parameter.* max_imgs; they have: .*max_images"),
        ({"artefacts": "artefacts/cpu"}, "published run, which one-off parameters never write over"),
    ],
)
def test_one_off_parameters_are_checked_before_anything_runs(project: Path, overrides, message) -> None:
    with pytest.raises(runner.StudyError, match=message):
        run(project, parameters=overrides)
    assert not (project / "artefacts").exists()


def test_a_scratch_folder_gets_copies_of_the_published_run_once_and_keeps_its_own_files(tmp_path: Path) -> None:
    committed, shipped, scratch = tmp_path / "cpu", tmp_path / "pretrained", tmp_path / "lab"
    (committed / "splits").mkdir(parents=True)
    (committed / "splits" / "split.csv").write_text("committed split\n")
    (committed / "scores.csv").write_text("committed scores\n")
    (shipped / "unet").mkdir(parents=True)
    (shipped / "unet" / "config.json").write_text("{}")
    scratch.mkdir()
    (scratch / "scores.csv").write_text("my own scores\n")
    assert runner.seed_scratch(scratch, committed, shipped)
    assert (scratch / "splits" / "split.csv").read_text() == "committed split\n"
    assert (scratch / "scores.csv").read_text() == "my own scores\n", "a file of the scratch folder was replaced"
    assert (scratch / runner.SCRATCH_MODELS / "unet" / "config.json").is_file()
    assert json.loads((scratch / runner.SEED_RECORD).read_text())["files"] == 2
    (scratch / "splits" / "split.csv").write_text("edited in Lab\n")
    assert not runner.seed_scratch(scratch, committed, shipped), "a seeded folder was seeded again"
    assert (scratch / "splits" / "split.csv").read_text() == "edited in Lab\n"
    assert (committed / "splits" / "split.csv").read_text() == "committed split\n"
    assert not list(tmp_path.rglob("*.partial"))


def test_a_scratch_run_saves_shipped_models_into_its_own_folder(project: Path) -> None:
    from nucleilib.models import PRETRAINED_DIR
    from nucleilib.study.chapter import ChapterRun

    scratch = ChapterRun("cpu", project, project / profiles.SCRATCH)
    published = ChapterRun("cpu", project, project / "artefacts" / "cpu")
    assert scratch.scratch and not published.scratch
    assert scratch.shipped("unet-dsb2018") == project / profiles.SCRATCH / runner.SCRATCH_MODELS / "unet-dsb2018"
    assert published.shipped("unet-dsb2018") == PRETRAINED_DIR / "unet-dsb2018"


def test_the_digest_follows_the_cells_not_the_jupytext_header(project: Path) -> None:
    source = project / "notebooks" / "01_eda.py"
    header = "# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n#     language: python\n#     name: python3\n# ---\n\n"
    source.write_text(header + NOTEBOOK)
    before = runner.notebook_digest(source, {"seed": 0})
    source.write_text(header.replace("Python 3\n", "Python 3 (ipykernel)\n") + NOTEBOOK)
    assert runner.notebook_digest(source, {"seed": 0}) == before
    assert runner.notebook_digest(source, {"seed": 1}) != before
    source.write_text(header + NOTEBOOK.replace("seed = 0", "seed = 5"))
    assert runner.notebook_digest(source, {"seed": 0}) != before


def test_chapter_parameters_reads_annotated_and_plain_assignments(tmp_path: Path) -> None:
    source = tmp_path / "c.py"
    source.write_text('# %% tags=["parameters"]\nseed: int = 3\nsizes = [1, 2]\npixels: int = 16 * 16\n')
    assert runner.chapter_parameters(source) == {"seed": 3, "sizes": [1, 2], "pixels": "16 * 16"}
    source.write_text('# %% tags=["parameters"]\nimport os\n')
    with pytest.raises(runner.StudyError, match="not `name = value`"):
        runner.chapter_parameters(source)
