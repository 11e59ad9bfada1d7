"""Peak memory and time of blockwise segmentation of one large image (nucleilib.big).

Builds a SIZE x SIZE uncompressed RGB TIFF on disk by tiling one DSB image (in a child process,
so that writing it counts nowhere), opens it as `nuclei predict` does (nucleilib.big.open_image:
read window by window), segments it block by block with the shipped model into a uint32 TIFF
(or, with --format zarr, a chunked zarr array) on disk, and prints the wall time, the nuclei
found, the process's peak resident memory and the peak of its anonymous part (resident memory
less any pages of mapped files; sampled every 0.2 s). A benchmark, not a test; it writes only
under --work:

    .venv/bin/python benchmarks/big.py --size 8192 [--backend keras] [--block 2048] [--format zarr]
    .venv/bin/python benchmarks/big.py --size 20000 --format zarr   # 20,000 x 20,000 pixels, as nuclei predict does it

Needs the DSB2018 data ($NUCLEI_DATA_DIR) for the tile it repeats.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _anonymous_mib() -> float:
    """Resident anonymous memory of this process (heap, arrays; not the pages of mapped files)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _PeakSampler:
    """The highest :func:`_anonymous_mib` seen, sampled every 0.2 s in a thread."""

    def __init__(self) -> None:
        import threading

        self.peak = _anonymous_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, _anonymous_mib())

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _anonymous_mib())


def _write_mosaic(path: str, size: int) -> None:
    """A size x size uncompressed RGB TIFF at ``path``, one 256x256 DSB image repeated."""
    import numpy as np
    import tifffile

    from nucleilib.data import data_root, load_dataset

    sample = next(s for s in load_dataset(data_root(), limit=20) if s.image.shape[:2] == (256, 256))
    image = tifffile.memmap(path, shape=(size, size, 3), dtype=np.uint8, photometric="rgb")
    tile = sample.image[..., :3]
    for y in range(0, size, 256):
        row = np.tile(tile, (1, -(-size // 256), 1))[: min(256, size - y), :size]
        image[y : y + row.shape[0]] = row
    image.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="side of the square image (default: %(default)s)")
    parser.add_argument(
        "--block", type=int, default=4096, help="block side, as nuclei predict's (default: %(default)s)"
    )
    parser.add_argument(
        "--backend", default="auto", help="inference backend, as nuclei predict's (default: %(default)s)"
    )
    parser.add_argument("--diameter", default="auto", help="auto, a number, or none (default: %(default)s)")
    parser.add_argument("--format", choices=("tif", "zarr"), default="tif", help="labels file (default: %(default)s)")
    parser.add_argument("--work", default=None, help="folder for the input and the labels (default: a temporary one)")
    args = parser.parse_args()

    from nucleilib.big import open_image, open_labels, segment_blockwise
    from nucleilib.machine import cpu_model
    from nucleilib.segmenter import Segmenter

    work = Path(args.work or tempfile.mkdtemp(prefix="nuclei-big-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "mosaic.tif"
    writer = multiprocessing.get_context("spawn").Process(target=_write_mosaic, args=(str(source), args.size))
    writer.start()
    writer.join()
    if writer.exitcode != 0:
        raise SystemExit(f"writing the mosaic {source} failed (exit code {writer.exitcode})")
    diameter = None if args.diameter == "none" else args.diameter if args.diameter == "auto" else float(args.diameter)
    segmenter = Segmenter.from_pretrained("unet-dsb2018", backend=args.backend, diameter=diameter)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sampler = _PeakSampler()
    start = time.perf_counter()
    out = open_labels(str(work / f"labels.{args.format}"), (args.size, args.size), chunk=args.block)
    result = segment_blockwise(segmenter, open_image(source), out, block=args.block, progress=True)
    seconds = time.perf_counter() - start
    anonymous = sampler.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.size} x {args.size} px, blocks of {args.block} ({result.blocks}), backend {segmenter.backend}, "
        f"diameter {result.diameter:.1f}: {result.nuclei} nuclei in {seconds:.0f} s "
        f"({seconds / (args.size * args.size / 65536) * 1000:.0f} ms per 256x256 of image); "
        f"peak resident memory {peak:.0f} MiB (before segmenting: {before:.0f} MiB), of which anonymous "
        f"(not the mapped files' pages) at most {anonymous:.0f} MiB; "
        f"labels as {args.format}; {cpu_model()}, {os.cpu_count()} cores; files in {work}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
