"""Sphinx extension of the book: MathJax served from the book itself, and no
script included twice.

The published HTML must work offline (and pass :mod:`nucleilib.study.book.sitecheck`, which
treats any script, stylesheet or font fetched from another origin as an error).
Sphinx's MathJax extension loads MathJax 3 from a CDN by default; ``_config.yml``
points ``mathjax_path`` at ``mathjax/tex-mml-chtml.js`` instead, which Sphinx
resolves inside the build's ``_static`` folder, and this extension copies that
part of MathJax there at the end of each HTML build, from the pinned
``django-static-mathjax`` wheel (an official MathJax 3 release as a Python
package; Django itself is not needed). Nothing of MathJax is committed.

It also drops repeated ``<script>`` tags from each page: sphinx-thebe 0.3.1 adds
its inline configuration (``const THEBE_JS_URL = ...``) twice with Sphinx 7, and
the second copy throws "Identifier 'THEBE_JS_URL' has already been declared" on
every page.

It is loaded from ``_config.yml``::

    sphinx:
      extra_extensions:
        - nucleilib.study.book.bookext
      config:
        mathjax_path: mathjax/tex-mml-chtml.js
"""

from __future__ import annotations

from ...errors import NucleiError

import shutil
from pathlib import Path
from typing import Any

#: Where the book expects MathJax, relative to the build's ``_static`` folder.
MATHJAX_PATH = "mathjax/tex-mml-chtml.js"

#: Parts of MathJax's ``es5`` folder the book needs: the combined TeX/MathML-to-HTML
#: component, its fonts, and what it may load on demand (TeX extensions through
#: ``autoload``, the context menu and the accessibility tools with their speech rules).
MATHJAX_PARTS = (
    "tex-mml-chtml.js",
    "output/chtml.js",
    "output/chtml",
    "input",
    "a11y",
    "ui",
    "sre",
    "adaptors",
)


class MathJaxMissing(NucleiError, RuntimeError):
    """The MathJax package is not installed."""


def mathjax_source() -> Path:
    """The ``es5`` folder of the installed MathJax 3 distribution.

    Raises
    ------
    MathJaxMissing
        When the ``django-static-mathjax`` package is not installed.
    """
    try:
        import mathjax  # the module of the django-static-mathjax wheel
    except ImportError:
        mathjax = None
    folder = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" if mathjax and mathjax.__file__ else None
    if folder is None or not (folder / "tex-mml-chtml.js").is_file():
        raise MathJaxMissing(
            "MathJax 3 is not installed (the book serves it locally so that it works offline); "
            "install the project with `pip install -c requirements-lock.txt -e .` "
            "(it depends on django-static-mathjax)"
        )
    return folder


def copy_mathjax(static_dir: str | Path) -> Path:
    """Copy the parts of MathJax the book uses into ``<static_dir>/mathjax``.

    Parameters
    ----------
    static_dir : path-like
        The build's ``_static`` folder.

    Returns
    -------
    Path
        The path of ``tex-mml-chtml.js`` in the build.
    """
    source = mathjax_source()
    target = Path(static_dir) / "mathjax"
    for part in MATHJAX_PARTS:
        origin = source / part
        if origin.is_dir():
            shutil.copytree(origin, target / part, dirs_exist_ok=True)
        elif origin.is_file():
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / part)
    return target / "tex-mml-chtml.js"


def _local_mathjax(app: Any) -> bool:
    path = str(getattr(app.config, "mathjax_path", "") or "")
    return path == MATHJAX_PATH


def _check(app: Any, config: Any) -> None:
    if _local_mathjax(app):
        mathjax_source()  # fail at the start of the build, not after it


def _copy(app: Any, exception: BaseException | None) -> None:
    if exception is not None or getattr(app.builder, "format", "") != "html":
        return
    if _local_mathjax(app):
        copy_mathjax(Path(app.outdir) / "_static")


def unique_scripts(scripts: list[Any]) -> list[Any]:
    """The script entries of a page with repeats removed (same file, same attributes,
    e.g. the same inline body), first occurrence kept, order unchanged."""
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    kept = []
    for script in scripts:
        filename = getattr(script, "filename", script) or ""  # inline scripts: None or ""
        attributes = getattr(script, "attributes", {}) or {}
        key = (str(filename), tuple(sorted((str(k), str(v)) for k, v in attributes.items())))
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    return kept


def _dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        context["script_files"] = unique_scripts(scripts)


def setup(app: Any) -> dict[str, Any]:
    """Register the extension with Sphinx."""
    app.connect("config-inited", _check)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("build-finished", _copy)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
