"""The ``nuclei`` command line tool."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from . import __version__
from .data import DATA_ENV, DEFAULT_DATASET, DatasetError, content_fingerprint, data_root
from .profiles import DEFAULT_PROFILE, NOTEBOOKS, PROFILES
from .study import StudyError, build_book, run_study


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nuclei",
        description="Nuclei segmentation study (DSB2018 / BBBC038): run the study, build the book, fetch the data.",
    )
    parser.add_argument("--version", action="version", version=f"nuclei {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    study = commands.add_parser("study", help="execute the study's notebooks with papermill")
    study.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE, help="compute profile (default: %(default)s)")
    study.add_argument("--only", nargs="+", choices=NOTEBOOKS, metavar="NOTEBOOK", help="run only these notebooks")
    study.add_argument("--force", action="store_true", help="re-run notebooks even when unchanged")
    study.add_argument("--no-progress", action="store_true", help="hide the per-cell progress bar")

    book = commands.add_parser("book", help="build the HTML book from a profile's executed notebooks")
    book.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE, help="compute profile (default: %(default)s)")
    book.add_argument("--no-strict", action="store_true", help="do not fail on Sphinx warnings")

    fetch = commands.add_parser(
        "fetch", help=f"download and verify the data set (or check the local copy named by ${DATA_ENV})"
    )
    fetch.add_argument("--verify", action="store_true", help="also check the content fingerprint of a local copy")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "study":
            start = time.perf_counter()
            runs = run_study(args.profile, only=args.only, force=args.force, progress_bar=not args.no_progress)
            ran = sum(r.status == "ran" for r in runs)
            print(f"study ({args.profile}): {ran} notebook(s) run, {len(runs) - ran} unchanged, "
                  f"{time.perf_counter() - start:.0f} s")
        elif args.command == "book":
            html = build_book(args.profile, strict=not args.no_strict)
            print(f"book ({args.profile}): {html / 'index.html'}")
        elif args.command == "fetch":
            root = data_root()
            n = sum(1 for p in root.iterdir() if p.is_dir())
            print(f"data: {root} ({n} samples)")
            if args.verify:
                from .data import DATASETS

                expected = DATASETS[DEFAULT_DATASET]["content_sha256"]
                found = content_fingerprint(root)
                verdict = "matches" if found == expected else "DIFFERS from"
                print(f"content fingerprint {found} {verdict} the registry")
                if found != expected:
                    return 1
        return 0
    except (DatasetError, StudyError, ValueError) as err:
        print(f"nuclei: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nuclei: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
