"""Check the built HTML book as a reader's browser sees it, offline.

Two checks, both over a folder of built HTML (``_build/<profile>/_build/html``):

:func:`check_links`
    Pure Python (:mod:`html.parser`), no browser: every internal ``href`` leads to
    a file that exists and, with a ``#fragment``, to an element of that id on the
    target page; every local image, script and stylesheet exists; no image,
    script, stylesheet or frame is fetched from another origin (the book must
    work offline; ordinary hyperlinks to other sites are fine).
:func:`check_site`
    Serves the folder on ``127.0.0.1`` (a random free port), opens every page in
    headless Chromium through Playwright and records console errors, uncaught
    page errors, same-origin requests that failed or answered HTTP >= 400,
    requests to any other origin (blocked, so the check never uses the network)
    and images that did not load; it also runs :func:`check_links` and saves
    full-page screenshots of the landing page and of one chapter.

The browser is the system's Chromium (``$NUCLEI_CHROMIUM``, else ``chromium``,
``chromium-browser`` or ``google-chrome`` on the ``PATH``); Playwright's own
browser downloads are never used.

Command line::

    python -m nucleilib.study.book.sitecheck _build/cpu/_build/html --screenshots _build/cpu/screenshots

exits 0 when the book is clean, 1 with one line per problem (page, kind,
detail) otherwise, and 2 when the folder or the browser is missing.
"""

from __future__ import annotations

from ...errors import NucleiError

import argparse
import functools
import http.server
import os
import shutil
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

#: Executables tried, in order, when ``$NUCLEI_CHROMIUM`` is not set.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Environment variable naming the Chromium executable to use.
CHROMIUM_ENV = "NUCLEI_CHROMIUM"
#: Folders of a Sphinx build that hold no pages of their own (templates, sources).
NON_PAGE_PREFIXES = ("_", ".")
#: The chapter screenshotted besides the landing page, when the build has it.
PREFERRED_CHAPTER = "book/cpu/02_unet.html"
#: URL schemes that are neither fetched from a server nor pages of the book.
_INERT_SCHEMES = ("mailto", "tel", "javascript", "data", "blob", "about")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one page.

    Attributes
    ----------
    page : str
        The page, relative to the HTML folder (``book/cpu/02_unet.html``).
    kind : str
        ``broken link``, ``missing anchor``, ``missing image``, ``missing resource``,
        ``external resource``, ``external request``, ``console error``,
        ``page error``, ``failed request`` or ``image not loaded``.
    detail : str
        What and where: the URL, the message.
    """

    page: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


@dataclass
class SiteReport:
    """What :func:`check_site` or :func:`check_links` found.

    Attributes
    ----------
    pages : list of str
        The pages checked, relative to the HTML folder.
    problems : list of Problem
    screenshots : list of Path
        The PNG files written.
    """

    pages: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def summary(self) -> str:
        """A human-readable report: one line per problem, then a verdict."""
        lines = [str(p) for p in self.problems]
        verdict = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        lines.append(f"checked {len(self.pages)} page(s): {verdict}")
        lines.extend(f"screenshot: {path}" for path in self.screenshots)
        return "\n".join(lines)


class SiteCheckError(NucleiError, RuntimeError):
    """The check could not run: no HTML folder, no browser, no Playwright."""


# --------------------------------------------------------------------------- parsing


@dataclass
class _Reference:
    tag: str
    attribute: str
    url: str
    line: int
    rel: tuple[str, ...] = ()


class _PageParser(HTMLParser):
    """Collects the ids, links and fetched resources of one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[_Reference] = []
        self.resources: list[_Reference] = []
        self.refresh: str | None = None
        self.next_page: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): (value or "") for name, value in attrs}
        line = self.getpos()[0]
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "a" and values.get("name"):
            self.ids.add(values["name"])
        rel = tuple(values.get("rel", "").lower().split())
        if tag in ("a", "area") and "href" in values:
            self.links.append(_Reference(tag, "href", values["href"], line, rel))
        elif tag == "link" and "href" in values:
            if {"stylesheet", "icon", "preload", "modulepreload", "manifest"} & set(rel):
                self.resources.append(_Reference(tag, "href", values["href"], line, rel))
            elif "next" in rel and self.next_page is None:
                self.next_page = values["href"]
            # rel=index/search/prev/next are navigation: checked as links.
            if {"index", "search", "prev", "next"} & set(rel):
                self.links.append(_Reference(tag, "href", values["href"], line, rel))
        elif tag in ("img", "script", "iframe", "source", "video", "audio", "embed") and values.get("src"):
            self.resources.append(_Reference(tag, "src", values["src"], line))
        elif tag == "object" and values.get("data"):
            self.resources.append(_Reference(tag, "data", values["data"], line))
        if tag in ("img", "source") and values.get("srcset"):
            for candidate in values["srcset"].split(","):
                url = candidate.strip().split(" ")[0]
                if url:
                    self.resources.append(_Reference(tag, "srcset", url, line))
        if tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            content = values.get("content", "")
            _, _, target = content.partition("url=")
            if not target:
                _, _, target = content.partition("URL=")
            if target.strip():
                self.refresh = target.strip().strip("'\"")
                self.links.append(_Reference(tag, "content", self.refresh, line))


@functools.lru_cache(maxsize=512)
def _parse_cached(path: str, mtime_ns: int, size: int) -> _PageParser:
    parser = _PageParser()
    parser.feed(Path(path).read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser


def _parse(path: Path) -> _PageParser:
    stat = path.stat()
    return _parse_cached(str(path), stat.st_mtime_ns, stat.st_size)


def _is_external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme and parts.scheme not in _INERT_SCHEMES) or url.startswith("//")


def _is_inert(url: str) -> bool:
    return urlsplit(url).scheme in _INERT_SCHEMES


def _resolve(root: Path, page: str, url: str) -> tuple[str, str]:
    """(target path relative to ``root`` in POSIX form, fragment) of an internal URL."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if not path:
        target = page
    else:
        base = PurePosixPath(page).parent
        joined = PurePosixPath(path) if path.startswith("/") else base / path
        stack: list[str] = []
        for piece in joined.parts:
            if piece in ("", ".", "/"):
                continue
            if piece == "..":
                if stack:
                    stack.pop()
                continue
            stack.append(piece)
        target = "/".join(stack)
        if path.endswith("/") or (target and (root / target).is_dir()):
            target = f"{target}/index.html" if target else "index.html"
    return target, unquote(parts.fragment)


def html_pages(html_dir: str | os.PathLike[str]) -> list[str]:
    """Every page of a build: the ``.html`` files outside ``_static``, ``_sources``
    and hidden folders, relative to ``html_dir``, sorted."""
    root = Path(html_dir)
    pages = []
    for path in root.rglob("*.html"):
        rel = path.relative_to(root)
        if any(part.startswith(NON_PAGE_PREFIXES) for part in rel.parts):
            continue
        pages.append(rel.as_posix())
    return sorted(pages)


def crawl(html_dir: str | os.PathLike[str], start: str = "index.html") -> list[str]:
    """The pages reachable from ``start`` through internal links, in breadth-first order."""
    root = Path(html_dir)
    if not (root / start).is_file():
        return []
    seen = {start}
    order = []
    queue = deque([start])
    while queue:
        page = queue.popleft()
        order.append(page)
        for ref in _parse(root / page).links:
            if _is_external(ref.url) or _is_inert(ref.url):
                continue
            target, _ = _resolve(root, page, ref.url)
            if target.endswith(".html") and target not in seen and (root / target).is_file():
                seen.add(target)
                queue.append(target)
    return order


def site_pages(html_dir: str | os.PathLike[str]) -> list[str]:
    """The pages to check: those reachable from ``index.html``, then any other listed page."""
    reachable = crawl(html_dir)
    return reachable + [p for p in html_pages(html_dir) if p not in reachable]


def check_links(html_dir: str | os.PathLike[str], pages: Sequence[str] | None = None) -> SiteReport:
    """Check internal links, anchors and local resources of built HTML, with no browser.

    Parameters
    ----------
    html_dir : path-like
        The HTML folder of a build.
    pages : sequence of str, optional
        Pages to check, relative to ``html_dir``; default :func:`site_pages`.

    Returns
    -------
    SiteReport
        Problems of kind ``broken link`` (the target file is missing),
        ``missing anchor`` (no element has the fragment's id), ``missing image``,
        ``missing resource`` (a local script, stylesheet or frame) and
        ``external resource`` (an image, script, stylesheet or frame from
        another origin).
    """
    root = Path(html_dir)
    if not root.is_dir():
        raise SiteCheckError(f"{root}: no such HTML folder")
    report = SiteReport(pages=list(pages) if pages is not None else site_pages(root))
    for page in report.pages:
        path = root / page
        if not path.is_file():
            report.problems.append(Problem(page, "broken link", f"{page} does not exist"))
            continue
        parsed = _parse(path)
        for ref in parsed.links:
            if _is_external(ref.url) or _is_inert(ref.url):
                continue
            target, fragment = _resolve(root, page, ref.url)
            where = f"line {ref.line}: <{ref.tag} {ref.attribute}={ref.url!r}>"
            if not (root / target).is_file():
                report.problems.append(Problem(page, "broken link", f"{where}: {target} does not exist"))
            elif fragment and target.endswith((".html", ".htm")) and fragment not in _parse(root / target).ids:
                report.problems.append(
                    Problem(page, "missing anchor", f"{where}: no element with id {fragment!r} in {target}")
                )
        for ref in parsed.resources:
            where = f"line {ref.line}: <{ref.tag} {ref.attribute}={ref.url!r}>"
            if _is_external(ref.url):
                report.problems.append(Problem(page, "external resource", f"{where}: loaded from another origin"))
                continue
            if _is_inert(ref.url):
                continue
            target, _ = _resolve(root, page, ref.url)
            if not (root / target).is_file():
                kind = "missing image" if ref.tag in ("img", "source") else "missing resource"
                report.problems.append(Problem(page, kind, f"{where}: {target} does not exist"))
    return report


# --------------------------------------------------------------------------- browser


def find_chromium() -> str | None:
    """The Chromium executable to drive: ``$NUCLEI_CHROMIUM``, else the first of
    :data:`CHROMIUM_NAMES` on the ``PATH``; None when there is none.

    Raises
    ------
    SiteCheckError
        When ``$NUCLEI_CHROMIUM`` names something that is not an executable file.
    """
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        found = shutil.which(named)
        if found is None:
            raise SiteCheckError(f"${CHROMIUM_ENV}={named!r} is not an executable")
        return found
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _Server:
    """The HTML folder served on 127.0.0.1 at a free port, in a daemon thread."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        port = int(self.httpd.server_address[1])
        self.origin = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="sitecheck-http", daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


# Loads every image eagerly and waits for each to load or fail (5 s at most), then
# returns those that did not load: [src, reason].
_BROKEN_IMAGES_JS = """
async () => {
  const images = Array.from(document.images);
  for (const img of images) { if (img.loading === "lazy") img.loading = "eager"; }
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener("load", done, {once: true});
    img.addEventListener("error", done, {once: true});
    setTimeout(done, 5000);
  })));
  return images
    .filter(img => !(img.complete && img.naturalWidth > 0))
    .map(img => [img.currentSrc || img.src || img.outerHTML.slice(0, 120),
                 img.complete ? "naturalWidth 0" : "still loading"]);
}
"""


def _page_of(url: str, origin: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if url.startswith(origin) else url


def _screenshot_targets(root: Path, pages: Sequence[str]) -> list[tuple[str, str]]:
    """(name, page) of the landing page and one chapter."""
    if not pages:
        return []
    landing = pages[0]
    if (root / landing).is_file():
        refresh = _parse(root / landing).refresh
        if refresh and not _is_external(refresh):
            target, _ = _resolve(root, landing, refresh)
            if (root / target).is_file():
                landing = target
    chapter = PREFERRED_CHAPTER if PREFERRED_CHAPTER in pages else None
    if chapter is None and (root / landing).is_file():
        following = _parse(root / landing).next_page
        if following and not _is_external(following):
            target, _ = _resolve(root, landing, following)
            chapter = target if (root / target).is_file() else None
    if chapter is None:
        chapter = next((p for p in pages if p not in (landing, pages[0], "genindex.html", "search.html")), None)
    targets = [("landing", landing)]
    if chapter and chapter != landing:
        targets.append(("chapter", chapter))
    return targets


def check_site(
    html_dir: str | os.PathLike[str],
    *,
    screenshots: str | os.PathLike[str] | None = None,
    chromium: str | None = None,
    pages: Sequence[str] | None = None,
    timeout_s: float = 30.0,
    viewport: tuple[int, int] = (1280, 900),
) -> SiteReport:
    """Open every page of a built book in headless Chromium and report what went wrong.

    Parameters
    ----------
    html_dir : path-like
        The HTML folder of a build.
    screenshots : path-like, optional
        Folder for ``landing.png`` and ``chapter.png`` (full-page screenshots of
        the landing page and of :data:`PREFERRED_CHAPTER`, or else the chapter
        after the landing page).
    chromium : str, optional
        The browser executable; default :func:`find_chromium`.
    pages : sequence of str, optional
        Pages to open, relative to ``html_dir``; default :func:`site_pages`.
    timeout_s : float
        Time limit of each page load.
    viewport : (int, int)
        Width and height of the browser window, in CSS pixels.

    Returns
    -------
    SiteReport
        The problems of :func:`check_links` and, per page, ``console error``,
        ``page error``, ``failed request`` (same origin: HTTP >= 400 or a network
        failure), ``external request`` (any other origin; blocked) and
        ``image not loaded``.

    Raises
    ------
    SiteCheckError
        No HTML folder, no Chromium, or Playwright not installed.
    """
    root = Path(html_dir)
    if not root.is_dir():
        raise SiteCheckError(f"{root}: no such HTML folder; build the book first (`nuclei book --profile cpu`)")
    executable = chromium or find_chromium()
    if executable is None:
        raise SiteCheckError(
            f"no Chromium found (tried ${CHROMIUM_ENV}, {', '.join(CHROMIUM_NAMES)}); "
            "install it (Debian/Ubuntu: `apt-get install chromium`) or set "
            f"{CHROMIUM_ENV} to its executable"
        )
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise SiteCheckError(
            "Playwright is not installed: `pip install -c requirements-lock.txt -e .[test]`"
        ) from err

    report = check_links(root, pages)
    targets = dict(_screenshot_targets(root, report.pages)) if screenshots is not None else {}
    shot_dir = Path(screenshots) if screenshots is not None else None
    if shot_dir is not None:
        shot_dir.mkdir(parents=True, exist_ok=True)

    with _Server(root) as server, sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True)
        except PlaywrightError as err:
            raise SiteCheckError(f"{executable} could not be started by Playwright: {err}") from None
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            context.set_default_timeout(timeout_s * 1000)
            for page_name in report.pages:
                report.problems.extend(_check_page(context, server.origin, page_name, PlaywrightError))
            for name, page_name in targets.items():
                assert shot_dir is not None
                path = shot_dir / f"{name}.png"
                _screenshot(context, server.origin, page_name, path)
                report.screenshots.append(path)
        finally:
            browser.close()
    return report


def _check_page(context: Any, origin: str, page_name: str, error_type: type[Exception]) -> list[Problem]:
    """Load one page and return its problems."""
    problems: list[Problem] = []
    requests: list[str] = []  # URLs with a failed or refused request, to drop duplicate console lines
    console: list[tuple[str, str]] = []

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith(origin + "/") or url == origin or _is_inert(url):
            route.continue_()
            return
        problems.append(Problem(page_name, "external request",
                                f"{route.request.resource_type} {url} (blocked: the book must work offline)"))
        requests.append(url)
        route.abort("blockedbyclient")

    def on_response(response: Any) -> None:
        if response.url.startswith(origin) and response.status >= 400:
            problems.append(Problem(page_name, "failed request", f"HTTP {response.status} for {response.url}"))
            requests.append(response.url)

    def on_failed(request: Any) -> None:
        if request.url.startswith(origin):
            problems.append(Problem(page_name, "failed request", f"{request.failure} for {request.url}"))
            requests.append(request.url)

    def on_console(message: Any) -> None:
        if message.type == "error":
            location = message.location or {}
            console.append((message.text, str(location.get("url", ""))))

    def on_page_error(error: Any) -> None:
        problems.append(Problem(page_name, "page error", str(error).strip().splitlines()[0] if str(error) else "?"))

    page = context.new_page()
    page.route("**/*", route)
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    url = f"{origin}/{page_name}"
    try:
        response = page.goto(url, wait_until="load")
        if response is None or response.status >= 400:
            status = response.status if response is not None else "no response"
            problems.append(Problem(page_name, "failed request", f"the page itself: {status}"))
        try:
            page.wait_for_load_state("networkidle", timeout=10_000)
        except error_type:
            pass  # a page that keeps polling still gets checked
        for src, reason in page.evaluate(_BROKEN_IMAGES_JS):
            problems.append(Problem(page_name, "image not loaded", f"{_page_of(src, origin)} ({reason})"))
    except error_type as err:
        problems.append(Problem(page_name, "page error", f"could not load {url}: {str(err).splitlines()[0]}"))
    finally:
        page.close()
    for text, location in console:
        # Chromium's "Failed to load resource" repeats a request problem reported above.
        if text.startswith("Failed to load resource") and requests:
            continue
        problems.append(Problem(page_name, "console error", text + (f" ({location})" if location else "")))
    return problems


def _screenshot(context: Any, origin: str, page_name: str, path: Path) -> None:
    """A full-page PNG of one page (other origins blocked, as in the check)."""

    def route(route: Any) -> None:
        if route.request.url.startswith(origin + "/") or _is_inert(route.request.url):
            route.continue_()
        else:
            route.abort("blockedbyclient")

    page = context.new_page()
    try:
        page.route("**/*", route)
        page.goto(f"{origin}/{page_name}", wait_until="load")
        try:
            page.wait_for_load_state("networkidle", timeout=10_000)
        except Exception:  # noqa: BLE001 - the screenshot is still worth taking
            pass
        page.evaluate("document.fonts ? document.fonts.ready.then(() => true) : true")
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.close()


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nucleilib.study.book.sitecheck HTML_DIR [--screenshots DIR] [--links-only]``."""
    parser = argparse.ArgumentParser(
        prog="python -m nucleilib.study.book.sitecheck",
        description="Check a built HTML book in headless Chromium, offline: console and page errors, "
                    "failed or external requests, broken links and anchors, images that did not load.",
    )
    parser.add_argument("html_dir", type=Path, help="the HTML folder, e.g. _build/cpu/_build/html")
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="folder for full-page PNG screenshots of the landing page and one chapter")
    parser.add_argument("--chromium", default=None,
                        help=f"Chromium executable (default: ${CHROMIUM_ENV}, else {', '.join(CHROMIUM_NAMES)})")
    parser.add_argument("--links-only", action="store_true",
                        help="check links, anchors and local files only, without a browser")
    args = parser.parse_args(argv)
    try:
        report = check_links(args.html_dir) if args.links_only else check_site(
            args.html_dir, screenshots=args.screenshots, chromium=args.chromium)
    except SiteCheckError as err:
        print(f"sitecheck: error: {err}", file=sys.stderr)
        return 2
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
