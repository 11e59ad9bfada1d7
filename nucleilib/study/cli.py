"""The study's sub-commands of ``nuclei``: ``study`` (run the notebooks) and ``book`` (build the HTML).

Registered through the ``nuclei.commands`` entry point group (see :mod:`nucleilib.cli`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from .profiles import DEFAULT_PROFILE, NOTEBOOKS, PROFILES


def register(commands: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add ``study`` and ``book`` to the ``nuclei`` parser's sub-commands."""
    study = commands.add_parser("study", help="execute the study's notebooks with papermill")
    study.add_argument(
        "--profile", choices=PROFILES, default=DEFAULT_PROFILE, help="compute profile (default: %(default)s)"
    )
    study.add_argument("--only", nargs="+", choices=NOTEBOOKS, metavar="NOTEBOOK", help="run only these notebooks")
    study.add_argument("--force", action="store_true", help="re-run notebooks even when unchanged")
    study.add_argument("--no-progress", action="store_true", help="hide the per-cell progress bar")
    study.add_argument(
        "--verify",
        action="store_true",
        help="re-execute (all or --only) chapters from the committed artefacts and models into artefacts/lab/"
        "verify-PROFILE and compare every table they write with the committed one (timings left out); "
        "exit status 1 if any differs",
    )
    study.add_argument(
        "--retrain",
        action="store_true",
        help="as --verify, but without the committed models: every chapter trains its models again from scratch "
        "(into artefacts/lab/retrain-PROFILE), and the report says how far each table moved",
    )
    study.add_argument(
        "--rescore",
        action="store_true",
        help="segment the test images again where a chapter has the networks' scores cached "
        "(artefacts/PROFILE/scores), and rewrite them (--verify always does)",
    )
    study.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="a one-off parameter value, as papermill's -p (repeatable); such a run writes into "
        "artefacts/lab (a copy of the profile's artefacts) or -p artefacts FOLDER, never over the published run",
    )

    book = commands.add_parser("book", help="build the HTML book from a profile's executed notebooks")
    book.add_argument(
        "--profile", choices=PROFILES, default=DEFAULT_PROFILE, help="compute profile (default: %(default)s)"
    )
    book.add_argument("--no-strict", action="store_true", help="do not fail on Sphinx warnings")
    return {"study": run_study_command, "book": run_book_command}


def run_study_command(args: argparse.Namespace) -> int:
    from .runner import parse_parameter_value, run_study

    start = time.perf_counter()
    if args.rescore:
        import os

        from .scores import RESCORE_ENV

        os.environ[RESCORE_ENV] = "1"  # the chapters' kernels inherit it
    if args.verify or args.retrain:
        return verify_study_command(args)
    overrides = {name: parse_parameter_value(value) for name, value in args.parameter or []}
    runs = run_study(
        args.profile, only=args.only, force=args.force, progress_bar=not args.no_progress, parameters=overrides
    )
    ran = sum(r.status == "ran" for r in runs)
    print(
        f"study ({args.profile}): {ran} notebook(s) run, {len(runs) - ran} unchanged, "
        f"{time.perf_counter() - start:.0f} s"
    )
    return 0


def verify_study_command(args: argparse.Namespace) -> int:
    import pandas as pd

    from .reproduce import REPORT, verdict, verify_study

    if args.parameter:
        raise SystemExit("error: --verify and --retrain re-execute the published parameters; they take no -p")
    ok, table, folder = verify_study(
        args.profile, only=args.only, retrain=args.retrain, progress_bar=not args.no_progress
    )
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 120, "display.width", 200):
        print(table.to_string(index=False))
    what = "retrain" if args.retrain else "verify"
    print(f"{what} ({args.profile}): {verdict(table)[1]} (report: {folder / REPORT})")
    return 0 if ok or args.retrain else 1  # a retraining is expected to move numbers: its report is the result


def run_book_command(args: argparse.Namespace) -> int:
    from .runner import build_book

    html = build_book(args.profile, strict=not args.no_strict)
    print(f"book ({args.profile}): {html / 'index.html'}")
    return 0
