"""The book's Sphinx extension: MathJax copied from the installed package, no
script tag twice, and the book configuration that relies on both."""

from __future__ import annotations

from pathlib import Path

import yaml

from nucleilib.study.book import bookext

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_mathjax_is_copied_with_its_fonts_and_extensions(tmp_path: Path) -> None:
    script = bookext.copy_mathjax(tmp_path / "_static")
    assert script == tmp_path / "_static" / bookext.MATHJAX_PATH
    assert script.stat().st_size > 500_000
    mathjax = tmp_path / "_static" / "mathjax"
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("MathJax_Main-Regular.woff"))
    assert (mathjax / "input" / "tex" / "extensions" / "ams.js").is_file()
    assert not (mathjax / "tex-svg.js").exists(), "only the parts the book uses are copied"


def test_repeated_scripts_are_dropped_in_order() -> None:
    class Script:
        def __init__(self, filename: str | None, **attributes: str) -> None:
            self.filename = filename
            self.attributes = attributes

    config = 'const THEBE_JS_URL = "x"'
    scripts = [
        Script("a.js"),
        Script(None, body=config),
        Script("_static/sphinx-thebe.js", **{"async": "async"}),
        Script("", body=config),
        Script("a.js"),
        Script(None, body="other"),
    ]
    kept = bookext.unique_scripts(scripts)
    assert kept == [scripts[0], scripts[1], scripts[2], scripts[5]]


def test_the_book_serves_mathjax_itself_and_numbers_figures() -> None:
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]
    assert "nucleilib.study.book.bookext" in sphinx["extra_extensions"]
    assert sphinx["config"]["mathjax_path"] == bookext.MATHJAX_PATH
    assert sphinx["config"]["numfig"] is True
    assert config["launch_buttons"] == {"notebook_interface": "jupyterlab", "binderhub_url": "https://mybinder.org"}
    assert config["repository"]["url"].startswith("https://github.com/")
    for button in ("use_download_button", "use_repository_button", "use_issues_button"):
        assert config["html"][button] is True
