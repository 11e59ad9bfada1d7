"""The JupyterLab round trip (nucleilib.study.book.labcheck): a chapter opened, run and saved in Lab
comes back byte-identical, and the check tells when it does not."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from nucleilib.study.book import labcheck, sitecheck

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "notebooks" / "08_audit.py"


def _needs_lab_and_chromium() -> str:
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.skip("JupyterLab is not installed (make lab, or pip install -e '.[lab]')")
    pytest.importorskip("playwright", reason="Playwright is not installed (pip install -e .[test])")
    chromium = sitecheck.find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (Debian/Ubuntu: apt-get install chromium)")
    return chromium


@pytest.mark.slow
def test_a_committed_chapter_comes_back_from_jupyterlab_byte_identical() -> None:
    chromium = _needs_lab_and_chromium()
    before = CHAPTER.read_bytes()
    result = labcheck.check_round_trip(CHAPTER, chromium=chromium)
    assert result.cells_run == 2, "the parameters and set-up cells were not both run"
    assert result.identical, result.diff
    assert CHAPTER.read_bytes() == before, "the check changed the committed chapter"


@pytest.mark.slow
def test_a_header_jupyterlab_would_rewrite_is_caught(tmp_path: Path) -> None:
    """The headers committed before this check: no jupytext filter, the kernel named "Python 3"."""
    chromium = _needs_lab_and_chromium()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text((ROOT / "_config.yml").read_text())
    old = "".join(
        line.replace("display_name: Python 3 (ipykernel)", "display_name: Python 3")
        for line in CHAPTER.read_text().splitlines(keepends=True)
        if "notebook_metadata_filter" not in line
    )
    chapter = tmp_path / "notebooks" / CHAPTER.name
    chapter.write_text(old)
    result = labcheck.check_round_trip(chapter, chromium=chromium)
    assert not result.identical
    assert "+#       jupytext_version:" in result.diff and "+#     display_name: Python 3 (ipykernel)" in result.diff
    assert chapter.read_text() == old, "the check changed the chapter it was given"


def test_a_missing_chapter_is_one_line_and_status_2(tmp_path: Path, capsys) -> None:
    assert labcheck.main([str(tmp_path / "nope.py")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.py: no such chapter" in err


DIALOG = """
<div class="jp-Dialog"><div>Select Kernel</div>
  <select><option>No Kernel</option><option {selected}>{kernel}</option></select>
  <button class="jp-Dialog-button jp-mod-accept" onclick="this.parentElement.remove()">Select</button>
</div>
"""


@pytest.mark.parametrize(("kernel", "accepted"), [("Python 3 (ipykernel)", True), ("R", False)])
def test_the_kernel_dialog_is_accepted_only_for_the_chapters_kernel(kernel: str, accepted: bool) -> None:
    pytest.importorskip("playwright", reason="Playwright is not installed (pip install -e .[test])")
    chromium = sitecheck.find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (Debian/Ubuntu: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.set_content(DIALOG.format(selected="selected", kernel=kernel))
        labcheck._accept_kernel_dialog(page)
        assert (page.locator(".jp-Dialog").count() == 0) is accepted
        page.set_content("<p>no dialog</p>")
        labcheck._accept_kernel_dialog(page)  # nothing to do
        browser.close()
