"""The whole `nuclei predict` command against the network alone, per backend, in one run.

For each backend it runs the command once as a user does (a new process, its defaults or the
given options) on the first LARGE 256x256 DSB images, and prints, on the same images and machine:

* end to end: the marginal time per image, the steady rate at which label images are written
  after the first SMALL, (t_LARGE - t_SMALL) / (LARGE - SMALL) with t_k the time the k-th label
  image was written (from the files' modification times), so start-up is left out;
* time to first result: from the command's start to its first label image on disk;
* the network alone: the same backend's forward pass on one 256x256 image, in this process
  (median of --repeats), and the ratio end to end / network;
* with ``--threads 1 2`` each thread count, and with ``--busy N`` all of it while N cores run
  other work (nucleilib.study.benchmarks.end_to_end_table does the measuring).

A benchmark, not a test; it writes only under --work:

    .venv/bin/python benchmarks/predict.py [--backends keras tflite-int8] [--large 80] [-- --diameter none]
    .venv/bin/python benchmarks/predict.py --backends tflite-int8 --threads 1 2 --busy 1 -- --diameter none

Options after ``--`` go to every `nuclei predict` call. Needs the DSB2018 data ($NUCLEI_DATA_DIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BACKENDS = ("keras", "tflite-int8", "tflite-float16")


def _images(count: int, folder: Path) -> list[Path]:
    """The first ``count`` 256x256 DSB images, copied into ``folder``."""
    from nucleilib.data import data_root, sample_folders
    from nucleilib.io import read_image

    folder.mkdir(parents=True, exist_ok=True)
    chosen: list[Path] = []
    for sample in sample_folders(data_root()):
        image = next((sample / "images").glob("*.png"))
        if read_image(image).shape[:2] == (256, 256):
            chosen.append(Path(shutil.copy(image, folder / image.name)))
        if len(chosen) == count:
            return chosen
    raise SystemExit(f"only {len(chosen)} 256x256 images in the data set")


def main() -> int:
    from nucleilib.machine import machine_info
    from nucleilib.study.benchmarks import end_to_end_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument(
        "--small", type=int, default=16, help="images left out at the start, as warm-up (default: %(default)s)"
    )
    parser.add_argument("--large", type=int, default=80, help="images in each run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=30, help="timed forward passes (default: %(default)s)")
    parser.add_argument(
        "--threads", type=int, nargs="+", help="also run with each --threads N (default: the command's)"
    )
    parser.add_argument(
        "--busy", type=int, default=0, help="cores kept busy by other work during the runs (default: 0)"
    )
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("extra", nargs="*", help="options for `nuclei predict`, after --")
    args = parser.parse_args()
    if args.large <= args.small:
        parser.error("--large must exceed --small")
    work = args.work or Path(tempfile.mkdtemp(prefix="nuclei-predict-bench-"))
    images = _images(args.large, work / "images")
    print(
        f"machine: {machine_info()['cpu']}, {os.cpu_count()} cores; "
        f"`nuclei predict` options: {' '.join(args.extra) or '(defaults)'}; {args.busy} core(s) busy with other work"
    )
    runs = [(backend, threads, args.busy) for backend in args.backends for threads in (args.threads or [None])]
    table = end_to_end_table(images, work, runs, small=args.small, options=args.extra, repeats=args.repeats)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
