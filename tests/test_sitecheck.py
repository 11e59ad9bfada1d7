"""The HTML checks of nucleilib.study.book.sitecheck: links on small synthetic sites, the
browser check when a Chromium is installed, and the built cpu book when present."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from nucleilib.study.book import sitecheck

REPO_ROOT = Path(__file__).resolve().parents[1]
CPU_BOOK = REPO_ROOT / "_build" / "cpu" / "_build" / "html"

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title>{head}</head><body>{body}</body></html>"


def write_site(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def good_site(root: Path) -> dict[str, str | bytes]:
    return {
        "index.html": '<meta http-equiv="Refresh" content="0; url=book/intro.html" />',
        "book/intro.html": page(
            '<h1 id="top">Intro</h1><a href="#top">top</a> <a href="chapter/one.html#results">results</a> '
            '<a href="https://doi.org/10.1000/xyz">a paper</a> <a href="mailto:a@b.c">mail</a> '
            '<img src="../_images/dot.png" alt="dot"> <a href="../search.html?q=x">search</a>',
            head='<link rel="stylesheet" href="../_static/style.css">',
        ),
        "book/chapter/one.html": page(
            '<section id="results"><a name="old-anchor"></a><a href="../intro.html">back</a>'
            '<a href="#old-anchor">old</a><a href="./">folder</a></section>'
        ),
        "book/chapter/index.html": page("<p>folder index</p>"),
        "search.html": page("<p>search</p>", head='<script src="_static/app.js"></script>'),
        "_static/style.css": "body { color: black; }",
        "_static/app.js": "document.title = 'ok';",
        "_static/webpack-macros.html": "{% macro x() %}{% endmacro %}",  # a template, not a page
        "_images/dot.png": PNG,
    }


# --------------------------------------------------------------------------- links, no browser


def test_a_good_tree_passes_and_every_page_is_found(tmp_path: Path) -> None:
    write_site(tmp_path, good_site(tmp_path))
    report = sitecheck.check_links(tmp_path)
    assert report.ok, report.summary()
    assert report.pages[:2] == ["index.html", "book/intro.html"]
    assert set(report.pages) == {
        "index.html",
        "book/intro.html",
        "book/chapter/one.html",
        "book/chapter/index.html",
        "search.html",
    }


def test_unlinked_pages_are_checked_too(tmp_path: Path) -> None:
    files = good_site(tmp_path)
    files["orphan.html"] = page('<a href="gone.html">gone</a>')
    write_site(tmp_path, files)
    report = sitecheck.check_links(tmp_path)
    assert "orphan.html" in report.pages
    assert [(p.page, p.kind) for p in report.problems] == [("orphan.html", "broken link")]


def test_a_missing_file_fails_naming_the_page(tmp_path: Path) -> None:
    files = good_site(tmp_path)
    files["book/chapter/one.html"] = page('<section id="results"><a href="two.html">next</a></section>')
    write_site(tmp_path, files)
    problems = sitecheck.check_links(tmp_path).problems
    assert len(problems) == 1
    assert problems[0].page == "book/chapter/one.html" and problems[0].kind == "broken link"
    assert "book/chapter/two.html does not exist" in str(problems[0])


def test_a_missing_anchor_fails_naming_the_page_and_the_id(tmp_path: Path) -> None:
    files = good_site(tmp_path)
    files["book/intro.html"] = page('<a href="chapter/one.html#resultz">results</a><a href="#nowhere">x</a>')
    write_site(tmp_path, files)
    problems = sitecheck.check_links(tmp_path).problems
    assert {(p.page, p.kind) for p in problems} == {("book/intro.html", "missing anchor")}
    text = "\n".join(map(str, problems))
    assert "'resultz' in book/chapter/one.html" in text and "'nowhere' in book/intro.html" in text


def test_a_missing_image_fails_naming_the_page(tmp_path: Path) -> None:
    files = good_site(tmp_path)
    del files["_images/dot.png"]
    write_site(tmp_path, files)
    problems = sitecheck.check_links(tmp_path).problems
    assert [(p.page, p.kind) for p in problems] == [("book/intro.html", "missing image")]
    assert "_images/dot.png" in problems[0].detail


def test_external_scripts_and_stylesheets_fail_but_hyperlinks_do_not(tmp_path: Path) -> None:
    files = good_site(tmp_path)
    files["search.html"] = page(
        '<a href="https://example.org/">fine</a>',
        head='<script src="https://cdn.example.org/x.js"></script>'
        '<link rel="stylesheet" href="//fonts.example.org/f.css">',
    )
    write_site(tmp_path, files)
    problems = sitecheck.check_links(tmp_path).problems
    assert [(p.page, p.kind) for p in problems] == [("search.html", "external resource")] * 2


def test_the_command_line_checks_links_without_a_browser(tmp_path: Path, capsys) -> None:
    write_site(tmp_path, good_site(tmp_path))
    assert sitecheck.main([str(tmp_path), "--links-only"]) == 0
    assert "OK" in capsys.readouterr().out
    (tmp_path / "_images" / "dot.png").unlink()
    assert sitecheck.main([str(tmp_path), "--links-only"]) == 1
    assert "book/intro.html: missing image" in capsys.readouterr().err
    assert sitecheck.main([str(tmp_path / "absent"), "--links-only"]) == 2


def test_a_named_chromium_that_does_not_exist_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv(sitecheck.CHROMIUM_ENV, "/nonexistent/chromium")
    with pytest.raises(sitecheck.SiteCheckError, match="NUCLEI_CHROMIUM"):
        sitecheck.find_chromium()


# --------------------------------------------------------------------------- in a browser


def _chromium() -> str:
    try:
        found = sitecheck.find_chromium()
    except sitecheck.SiteCheckError as err:
        pytest.skip(str(err))
    if found is None:
        pytest.skip(
            "no Chromium found ($NUCLEI_CHROMIUM, chromium, chromium-browser, google-chrome): "
            "the browser check needs one (Debian/Ubuntu: apt-get install chromium)"
        )
    pytest.importorskip("playwright", reason="Playwright is not installed (pip install -e .[test])")
    return found


@pytest.mark.slow
def test_browser_check_passes_a_clean_site_and_takes_screenshots(tmp_path: Path) -> None:
    chromium = _chromium()
    html = write_site(tmp_path / "html", good_site(tmp_path))
    report = sitecheck.check_site(html, screenshots=tmp_path / "shots", chromium=chromium)
    assert report.ok, report.summary()
    assert [p.name for p in report.screenshots] == ["landing.png", "chapter.png"]
    for path in report.screenshots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_browser_check_reports_console_page_request_and_image_errors(tmp_path: Path) -> None:
    chromium = _chromium()
    files = good_site(tmp_path)
    files.update(
        {
            "console.html": page("<p>x</p><script>console.error('deliberate console error')</script>"),
            "throws.html": page("<script>undefinedFunction()</script>"),
            "cdn.html": page("<p>x</p>", head='<script src="https://cdn.example.org/x.js"></script>'),
            "missing.html": page('<script src="_static/absent.js"></script>'),
            "broken-image.html": page('<img src="_images/not-a-png.png" alt="x">'),
            "_images/not-a-png.png": b"this is not an image",
        }
    )
    html = write_site(tmp_path / "html", files)
    report = sitecheck.check_site(html, chromium=chromium)
    found = {(p.page, p.kind) for p in report.problems}
    assert ("console.html", "console error") in found
    assert any("deliberate console error" in p.detail for p in report.problems if p.page == "console.html")
    assert ("throws.html", "page error") in found
    assert ("cdn.html", "external request") in found  # blocked: the check never goes online
    assert ("cdn.html", "external resource") in found
    assert ("missing.html", "failed request") in found and ("missing.html", "missing resource") in found
    assert ("broken-image.html", "image not loaded") in found
    clean = {"index.html", "book/intro.html", "book/chapter/one.html", "book/chapter/index.html", "search.html"}
    assert not {page for page, _ in found} & clean, report.summary()
    assert sitecheck.main([str(html), "--chromium", chromium]) == 1


@pytest.mark.slow
def test_the_built_cpu_book_passes_the_browser_check(tmp_path: Path) -> None:
    if not (CPU_BOOK / "index.html").is_file():
        pytest.skip(f"no built cpu book at {CPU_BOOK} (run `nuclei book --profile cpu`)")
    chromium = _chromium()
    report = sitecheck.check_site(CPU_BOOK, screenshots=tmp_path, chromium=chromium)
    assert report.ok, report.summary()
    assert len(report.pages) >= 5
