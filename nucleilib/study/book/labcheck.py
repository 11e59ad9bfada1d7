"""Check that a chapter comes back byte-identical from JupyterLab.

``python -m nucleilib.study.book.labcheck notebooks/08_audit.py`` does what a reader does:
it starts JupyterLab (from this environment's ``[lab]`` extra) on a scratch copy of the
project holding the chapter, opens the chapter with *Open With > Jupytext Notebook* in
headless Chromium (the system's, as the site check uses), runs its first cells (the
parameters and the set-up call), saves with Ctrl+S and compares the saved file with the
original, byte for byte. Exit status 0 when identical, 1 with a diff when not, 2 when the
check could not be carried out (no JupyterLab, no Chromium, Lab did not start).

The chapter is copied, never opened in place, so the check cannot change a tracked file.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ...errors import NucleiError
from ..lab import LabNotInstalledError, lab_command
from ..runner import set_study_environment
from .sitecheck import find_chromium

#: Cells run before saving: the title (markdown), the parameters and the set-up call.
DEFAULT_CELLS = 3
#: The kernel the chapters' headers name (``kernelspec.display_name``), as Lab lists it.
KERNEL_DISPLAY_NAME = "Python 3"


class LabCheckError(NucleiError, RuntimeError):
    """The round trip could not be carried out (as opposed to a file that changed)."""


@dataclass(frozen=True)
class RoundTrip:
    """What a save from JupyterLab did to one chapter."""

    chapter: Path
    identical: bool
    diff: str
    cells_run: int
    seconds: float


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_lab(folder: Path, port: int, token: str, log: Path) -> subprocess.Popen[bytes]:
    flags = [
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={folder}",
        "--LabApp.news_url=",  # the news pop-up asks to reach the internet
    ]
    try:
        command = lab_command(flags)
    except LabNotInstalledError as err:
        raise LabCheckError(str(err)) from None
    if hasattr(os, "getuid") and os.getuid() == 0:
        command.append("--allow-root")
    set_study_environment()  # the kernels compute as the book's run did (oneDNN on)
    # Lab's own settings and workspaces stay in the scratch folder, not the user's home.
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(folder.parent / "jupyter-config"),
        "JUPYTERLAB_WORKSPACES_DIR": str(folder.parent / "jupyter-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(folder.parent / "jupyter-runtime"),
    }
    with log.open("wb") as output:
        return subprocess.Popen(command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT)


def _wait_for_lab(process: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabCheckError(f"JupyterLab exited with status {process.returncode}: {log.read_text()[-800:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise LabCheckError(f"JupyterLab did not answer within {timeout_s:.0f} s ({log})")


def _accept_kernel_dialog(page) -> None:
    """Accept JupyterLab's "Select Kernel" dialog when it shows the chapter's own kernel.

    Lab asks which kernel to start when it opens a notebook before it has the list of kernels
    (on a busy machine); the dialog preselects the kernel the chapter's header names, and
    accepting it is what a user does. Any other dialog, or another kernel, is left for the
    check to fail on.
    """
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count() == 0 or not dialog.first.is_visible():
        return
    chosen = dialog.first.locator("select").evaluate("s => s.options[s.selectedIndex].text")
    if chosen.startswith(KERNEL_DISPLAY_NAME):
        dialog.first.locator(".jp-Dialog-button.jp-mod-accept").click()
        dialog.first.wait_for(state="detached")


def _open_run_save(page, base: str, name: str, cells: int, timeout_s: float) -> int:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    visible = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    page.goto(f"{base}&reset")  # a fresh workspace: no tab left open by an earlier visit
    page.wait_for_selector(".jp-DirListing-item", timeout=timeout_s * 1000)
    page.locator(f'.jp-DirListing-item[title*="{name}"]').first.click(button="right")
    page.get_by_text("Open With", exact=True).hover()
    page.locator(".lm-Menu-itemLabel", has_text="Jupytext Notebook").click()
    page.wait_for_selector(f"{visible} .jp-Cell", timeout=timeout_s * 1000)
    # The panel shows a spinner over its cells until the document is loaded and rendered.
    page.wait_for_selector(f"{visible} .jp-Spinner", state="detached", timeout=timeout_s * 1000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_s * 1000)
    code_cells_run = 0
    for index in range(cells):
        cell = page.locator(f"{visible} .jp-Cell").nth(index)
        if "jp-CodeCell" not in (cell.get_attribute("class") or ""):
            continue
        prompt = cell.locator(".jp-InputPrompt")
        # A kernel still connecting drops a run request without a word: ask again until it is taken.
        for _attempt in range(int(timeout_s // 10) + 1):
            try:
                _accept_kernel_dialog(page)
                cell.locator(".jp-InputArea-editor").click(timeout=10_000)  # a dialog may cover it: ask again
                page.keyboard.press("Control+Enter")
                page.wait_for_function(
                    "p => /\\[(\\d+|\\*)\\]/.test(p.textContent)", arg=prompt.element_handle(), timeout=10_000
                )
                break
            except PlaywrightTimeout:
                continue
        page.wait_for_function(
            "p => /\\[\\d+\\]/.test(p.textContent)", arg=prompt.element_handle(), timeout=timeout_s * 1000
        )
        code_cells_run += 1
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_s * 1000)
    # Lab renders a traceback as stderr text: tell it from a warning by its last line.
    for text in page.locator(f"{visible} .jp-OutputArea-output[data-mime-type$='stderr']").all_inner_texts():
        if re.search(r"^\w*(Error|Exception)\b.*:", text, re.MULTILINE):
            raise LabCheckError(f"{name}: a cell run in JupyterLab failed: {text[-500:]}")
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current').classList.contains('jp-mod-dirty')",
        timeout=timeout_s * 1000,
    )
    return int(code_cells_run)


def check_round_trip(
    chapter: str | os.PathLike[str],
    *,
    project: str | os.PathLike[str] | None = None,
    cells: int = DEFAULT_CELLS,
    chromium: str | None = None,
    timeout_s: float = 300.0,
) -> RoundTrip:
    """Open ``chapter`` in JupyterLab, run its first ``cells`` cells, save, and compare.

    Parameters
    ----------
    chapter : path-like
        A jupytext chapter (``notebooks/<name>.py``).
    project : path-like, optional
        The project whose ``_config.yml`` the copy gets (so the set-up cell finds a
        project); by default the folder above ``chapter``'s.
    cells : int
        How many cells to run from the top before saving.
    chromium : str, optional
        Browser executable (default: :func:`~nucleilib.study.book.sitecheck.find_chromium`).
    timeout_s : float
        Limit for each wait (Lab starting, the kernel, the cells, the save).

    Raises
    ------
    LabCheckError
        When JupyterLab, Playwright or Chromium is missing, Lab does not start, or a cell fails.
    """
    source = Path(chapter).resolve()
    if not source.is_file():
        raise LabCheckError(f"{source}: no such chapter")
    project_dir = Path(project) if project is not None else source.parent.parent
    executable = chromium or find_chromium()
    if executable is None:
        raise LabCheckError("no Chromium found ($NUCLEI_CHROMIUM, chromium, chromium-browser, google-chrome)")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise LabCheckError("Playwright is not installed (pip install -e '.[test]')") from None
    original = source.read_bytes()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nuclei-labcheck-") as scratch:
        folder = Path(scratch) / "project"
        (folder / "notebooks").mkdir(parents=True)
        shutil.copy2(project_dir / "_config.yml", folder / "_config.yml")
        copy = folder / "notebooks" / source.name
        copy.write_bytes(original)
        port, token = _free_port(), secrets.token_hex(16)
        log = Path(scratch) / "lab.log"
        lab = _start_lab(folder / "notebooks", port, token, log)
        try:
            _wait_for_lab(lab, f"http://127.0.0.1:{port}/api/status?token={token}", log, timeout_s)
            with sync_playwright() as playwright:
                try:
                    browser = playwright.chromium.launch(executable_path=executable, headless=True)
                except PlaywrightError as err:
                    raise LabCheckError(f"{executable} could not be started by Playwright: {err}") from None
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    base = f"http://127.0.0.1:{port}/lab?token={token}"
                    ran = _open_run_save(page, base, source.name, cells, timeout_s)
                except PlaywrightError as err:
                    shot = Path(tempfile.gettempdir()) / f"labcheck-{source.stem}.png"
                    page.screenshot(path=str(shot))
                    raise LabCheckError(
                        f"{source.name}: JupyterLab did not do as expected (screenshot: {shot}): {err}"
                    ) from None
                finally:
                    browser.close()
        finally:
            lab.terminate()
            try:
                lab.wait(timeout=20)
            except subprocess.TimeoutExpired:
                lab.kill()
        saved = copy.read_bytes()
    diff = "".join(
        difflib.unified_diff(
            original.decode().splitlines(keepends=True),
            saved.decode().splitlines(keepends=True),
            fromfile=f"{source.name} (committed)",
            tofile=f"{source.name} (saved by JupyterLab)",
        )
    )
    return RoundTrip(source, saved == original, diff, ran, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nucleilib.study.book.labcheck",
        description="Open chapters in JupyterLab, run their first cells, save, and check nothing changed.",
    )
    parser.add_argument("chapters", nargs="+", type=Path, help="jupytext chapters (notebooks/<name>.py)")
    parser.add_argument("--cells", type=int, default=DEFAULT_CELLS, help="cells to run before saving")
    parser.add_argument("--chromium", help="browser executable (default: $NUCLEI_CHROMIUM or chromium)")
    args = parser.parse_args(argv)
    status = 0
    for chapter in args.chapters:
        try:
            result = check_round_trip(chapter, cells=args.cells, chromium=args.chromium)
        except LabCheckError as err:
            print(f"labcheck: {err}", file=sys.stderr)
            return 2
        verdict = "byte-identical" if result.identical else "CHANGED"
        print(
            f"{chapter}: opened in JupyterLab, {result.cells_run} code cell(s) run, saved: {verdict} "
            f"({result.seconds:.0f} s)"
        )
        if not result.identical:
            print(result.diff)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
