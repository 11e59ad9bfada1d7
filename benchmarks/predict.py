"""The whole `nuclei predict` command against the network alone, per backend, in one run.

For each backend it runs the command as a user does (a new process, its defaults or the given
options) on the first SMALL and then the first LARGE 256x256 DSB images, and prints, on the same
images and machine:

* end to end: the marginal time per image, (t_LARGE - t_SMALL) / (LARGE - SMALL), which leaves
  out the start-up both runs pay;
* time to first result: from the command's start to its first label image on disk;
* the network alone: the same backend's forward pass on one 256x256 image, in this process
  (median of --repeats), and the ratio end to end / network.

A benchmark, not a test; it writes only under --work:

    .venv/bin/python benchmarks/predict.py [--backends keras tflite-int8] [--large 80] [-- --diameter none]

Options after ``--`` go to every `nuclei predict` call. Needs the DSB2018 data ($NUCLEI_DATA_DIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
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


def _run_command(inputs: list[Path], out: Path, backend: str, extra: list[str]) -> tuple[float, float]:
    """Wall time of one `nuclei predict` and the time to its first label image."""
    nuclei = Path(sys.executable).with_name("nuclei")
    command = [str(nuclei), "predict", *map(str, inputs), "-o", str(out), "--backend", backend, *extra]
    first: list[float] = []
    start = time.perf_counter()

    def watch() -> None:
        while not first:
            if out.is_dir() and any(out.glob("*_labels.*")):
                first.append(time.perf_counter() - start)
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    done = subprocess.run(command, capture_output=True, text=True)
    total = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    watcher.join(timeout=1)
    return total, first[0] if first else float("nan")


def _network_ms(backend: str, image: Path, repeats: int) -> float:
    """Median ms of one forward pass of ``backend`` on the preprocessed 256x256 image."""
    import numpy as np

    from nucleilib.backends import load_predict_fn
    from nucleilib.io import read_image
    from nucleilib.preprocess import preprocess

    predict, config = load_predict_fn("unet-dsb2018", backend)
    batch = preprocess(read_image(image), invert_bright=config.invert_bright)[None].astype(np.float32)
    predict(batch)  # build, allocate, trace
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(batch)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    from nucleilib.machine import machine_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--small", type=int, default=16, help="images in the short run (default: %(default)s)")
    parser.add_argument("--large", type=int, default=80, help="images in the long run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=30, help="timed forward passes (default: %(default)s)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("extra", nargs="*", help="options for `nuclei predict`, after --")
    args = parser.parse_args()
    if args.large <= args.small:
        parser.error("--large must exceed --small")
    work = args.work or Path(tempfile.mkdtemp(prefix="nuclei-predict-bench-"))
    images = _images(args.large, work / "images")
    print(
        f"machine: {machine_info()['cpu']}, {os.cpu_count()} cores; "
        f"`nuclei predict` options: {' '.join(args.extra) or '(defaults)'}"
    )
    print(
        f"{'backend':<16}{'e2e ms/img':>11}{'network ms':>11}{'ratio':>7}{'first s':>9}"
        f"{'t ' + str(args.small):>8}{'t ' + str(args.large):>8}"
    )
    for backend in args.backends:
        small_s, first_s = _run_command(images[: args.small], work / f"out-{backend}-small", backend, args.extra)
        large_s, _ = _run_command(images, work / f"out-{backend}-large", backend, args.extra)
        marginal = (large_s - small_s) / (args.large - args.small) * 1000
        network = _network_ms(backend, images[0], args.repeats)
        print(
            f"{backend:<16}{marginal:>11.1f}{network:>11.1f}{marginal / network:>7.2f}{first_s:>9.2f}"
            f"{small_s:>8.1f}{large_s:>8.1f}"
        )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
