"""The chapters' sources and the committed (cpu) book: numbered figures and their references."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from nucleilib.study import profiles
from nucleilib.study import runner as study

ROOT = Path(__file__).resolve().parents[1]
NUMREF = re.compile(r"\{numref\}`(?:[^`<]*<)?([^`>]+)>?`")


def _source(name: str):
    return jupytext.read(ROOT / "notebooks" / f"{name}.py")


def _markdown(notebook) -> str:
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")


def test_figure_names_are_unique_across_the_book() -> None:
    names = [options["name"] for chapter in profiles.NOTEBOOKS for _, options in study.figure_cells(_source(chapter))]
    assert names, "no numbered figure in any chapter"
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("chapter", profiles.NOTEBOOKS)
def test_every_numref_names_a_figure_of_its_chapter(chapter: str) -> None:
    notebook = _source(chapter)
    figures = {options["name"] for _, options in study.figure_cells(notebook)}
    targets = set(NUMREF.findall(_markdown(notebook)))
    assert targets <= figures, f"{chapter}: {{numref}} to unknown figure(s) {sorted(targets - figures)}"


@pytest.mark.parametrize("chapter", profiles.NOTEBOOKS)
def test_chapter_figures_have_names_and_captions(chapter: str) -> None:
    for index, options in study.figure_cells(_source(chapter)):
        assert str(options.get("name", "")).startswith("fig-"), f"{chapter} cell {index}: {options}"
        assert len(str(options.get("caption", ""))) > 20, f"{chapter} cell {index}: caption too short: {options}"


@pytest.mark.parametrize("chapter", profiles.NOTEBOOKS)
def test_committed_book_shows_each_figure_once(chapter: str) -> None:
    executed = ROOT / "book" / "cpu" / f"{chapter}.ipynb"
    if not executed.is_file():
        pytest.skip(f"{executed} not committed")
    notebook = nbformat.read(executed, as_version=4)
    assert study.figure_problems(notebook) == []
    source_names = [o["name"] for _, o in study.figure_cells(_source(chapter))]
    book_names = [o["name"] for _, o in study.figure_cells(notebook)]
    assert book_names == source_names, f"book/cpu/{chapter}.ipynb is older than notebooks/{chapter}.py: re-run it"


#: The longest code cell a chapter may have (the parameters cell aside): chapters are
#: narrative over library calls, and what they compute lives in nucleilib where tests reach it.
MAX_CELL_LINES = 25


@pytest.mark.parametrize("chapter", profiles.NOTEBOOKS)
def test_code_cells_are_short(chapter: str) -> None:
    for index, cell in enumerate(_source(chapter).cells):
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        lines = [line for line in cell.source.splitlines() if line.strip()]
        assert len(lines) <= MAX_CELL_LINES, f"{chapter} cell {index}: {len(lines)} lines of code"


@pytest.mark.parametrize("chapter", profiles.NOTEBOOKS)
def test_each_chapter_makes_the_one_set_up_call(chapter: str) -> None:
    code = [cell.source for cell in _source(chapter).cells if cell.cell_type == "code"]
    calls = [source for source in code if "chapter.setup(profile, artefacts)" in source]
    assert len(calls) == 1, f"{chapter}: {len(calls)} set-up calls"
    assert not any("project_root()" in source or "run_info(profile)" in source for source in code)


@pytest.mark.parametrize("chapter", profiles.NOTEBOOKS)
def test_chapter_survives_a_jupytext_round_trip_byte_for_byte(chapter: str) -> None:
    """What JupyterLab's jupytext does on save: read the text notebook, write it back. The headers
    carry jupytext's options (no version lines) and the kernel JupyterLab reports, so nothing changes."""
    text = (ROOT / "notebooks" / f"{chapter}.py").read_text()
    assert jupytext.writes(jupytext.reads(text, fmt="py:percent"), fmt="py:percent") == text


@pytest.mark.parametrize("chapter", profiles.NOTEBOOKS)
def test_every_parameter_has_a_type_papermill_shows(chapter: str, tmp_path: Path) -> None:
    import papermill

    notebook = tmp_path / f"{chapter}.ipynb"
    jupytext.write(_source(chapter), notebook, fmt="ipynb")
    inferred = papermill.inspect_notebook(str(notebook))
    assert set(inferred) == set(study.chapter_parameters(ROOT / "notebooks" / f"{chapter}.py"))
    untyped = [name for name, info in inferred.items() if info["inferred_type_name"] in ("None", None)]
    assert not untyped, f"{chapter}: parameters without a type: {untyped}"
