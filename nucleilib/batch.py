"""A resumable run of ``nuclei predict`` over many images: what is done, and the tables at the end.

A run writes, beside its label images, a record of its settings (:data:`RUN_RECORD`) and one small
part per finished image (:data:`PARTS_FOLDER`), each written to a temporary name and renamed,
so that a part exists only once its image's outputs are complete. Interrupted (Ctrl-C, a killed
process, a full disk), the same command started again skips the images whose parts exist and
segments the rest; ``summary.csv`` and ``nuclei.csv`` are assembled from the parts, one row per
image (and per nucleus) whatever the number of attempts. A folder holding results made with
other settings, or files of another origin, is never written over without ``--overwrite``.

Examples
--------
>>> import tempfile, pandas as pd
>>> out = Path(tempfile.mkdtemp())
>>> run = PredictionRun.start(out, {"model": "m"}, targets=[out / "a_labels.png"])
>>> _ = (out / "a_labels.png").write_bytes(b"labels")
>>> run.finish("a", {"image": "a.png", "output": "a_labels.png", "status": "ok"},
...            pd.DataFrame({"image": ["a.png"], "label": [1]}))
>>> again = PredictionRun.start(out, {"model": "m"}, targets=[out / "a_labels.png"])
>>> again.resumed, again.is_done("a"), again.is_done("b")
(True, True, False)
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import NucleiError

#: The settings of the run that wrote an output folder (JSON, in that folder).
RUN_RECORD = ".nuclei-run.json"
#: The folder of per-image parts (JSON), inside the output folder.
PARTS_FOLDER = ".nuclei-parts"
#: Columns of ``nuclei.csv``.
NUCLEI_COLUMNS = ["image", "label", "area", "centroid_y", "centroid_x"]


class OutputError(NucleiError):
    """An output file could not be written (a full disk, a lost folder): the run stops.

    ``name`` is the image's output name and ``row`` its row of ``summary.csv``."""

    def __init__(self, message: str, name: str, row: dict[str, Any]) -> None:
        super().__init__(message)
        self.name, self.row = name, row


def failure_row(path: Path, message: str) -> dict[str, Any]:
    """The ``summary.csv`` row of an image that could not be segmented."""
    return {
        "image": str(path),
        "output": "",
        "nuclei": None,
        "diameter": None,
        "scale": None,
        "status": f"error: {message}",
    }


def _write_json_atomically(path: Path, value: Any) -> None:
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(json.dumps(value, indent=1, sort_keys=True, default=str))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k} {old.get(k)!r} then, {new.get(k)!r} now" for k in keys if old.get(k) != new.get(k))


@dataclass
class PredictionRun:
    """The state of one output folder (see the module docstring)."""

    out: Path
    settings: dict[str, Any]
    resumed: bool

    @property
    def parts(self) -> Path:
        return self.out / PARTS_FOLDER

    @classmethod
    def start(
        cls,
        out: str | os.PathLike[str],
        settings: Mapping[str, Any],
        *,
        targets: Sequence[Path] = (),
        overwrite: bool = False,
    ) -> PredictionRun:
        """Open ``out`` for a run with ``settings`` (JSON-serialisable), resuming an earlier
        run of the same settings.

        Raises
        ------
        NucleiError
            Without ``overwrite``: when ``out`` holds a run of other settings, or (with no run
            record) any of ``targets`` exists. The message names the file and the way out.
        """
        out = Path(out)
        settings = json.loads(json.dumps(dict(settings), default=str))
        record = out / RUN_RECORD
        earlier: dict[str, Any] | None = None
        if record.is_file():
            try:
                earlier = json.loads(record.read_text())["settings"]
            except (ValueError, KeyError, TypeError):
                earlier = None
            if earlier is None and not overwrite:
                raise NucleiError(f"{record}: unreadable run record; use --overwrite to start this folder again")
        if not overwrite:
            if earlier is not None and earlier != settings:
                raise NucleiError(
                    f"{record}: the results in {out} were made with other settings ({_differences(earlier, settings)}); "
                    "run the same command to resume, pass --overwrite to replace them, or choose another output folder"
                )
            if earlier is None:
                existing = [t for t in targets if Path(t).exists()]
                if existing:
                    raise NucleiError(
                        f"{existing[0]}: exists ({len(existing)} output file(s) would be replaced); "
                        "use --overwrite to replace them"
                    )
        run = cls(out, settings, resumed=earlier is not None and not overwrite)
        out.mkdir(parents=True, exist_ok=True)
        if not run.resumed:
            shutil.rmtree(run.parts, ignore_errors=True)
        run.parts.mkdir(exist_ok=True)
        _write_json_atomically(record, {"settings": settings})
        return run

    def _part(self, name: str) -> Path:
        return self.parts / f"{name}.json"

    def _finished_part(self, name: str) -> dict[str, Any] | None:
        """Image ``name``'s part, if it is readable and its label file exists; else None."""
        part = self._part(name)
        if not part.is_file():
            return None
        try:
            content = json.loads(part.read_text())
            output = content["summary"].get("output", "")
        except (ValueError, KeyError, AttributeError):
            return None
        return content if output and (self.out / output).is_file() else None

    def is_done(self, name: str) -> bool:
        """Whether image ``name`` was finished by this run or an earlier one of the same settings."""
        return self._finished_part(name) is not None

    def finish(self, name: str, summary: Mapping[str, Any], nuclei: pd.DataFrame) -> None:
        """Record image ``name`` as done, once all of its outputs are written."""
        rows = nuclei.astype(object).where(nuclei.notna(), None).to_dict(orient="list")
        _write_json_atomically(self._part(name), {"summary": dict(summary), "nuclei": rows})

    def tables(
        self, names: Sequence[str], failures: Mapping[str, Mapping[str, Any]]
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``summary.csv`` and ``nuclei.csv`` of ``names`` in that order: a finished image's
        rows from its part, a failed one's summary row from ``failures``; others are left out."""
        summary, nuclei = [], []
        for name in names:
            if name in failures:
                summary.append(dict(failures[name]))
                continue
            part = self._finished_part(name)
            if part is None:
                continue
            summary.append(part["summary"])
            nuclei.append(pd.DataFrame(part["nuclei"], columns=NUCLEI_COLUMNS))
        summary_table = pd.DataFrame(summary, columns=["image", "output", "nuclei", "diameter", "scale", "status"])
        nuclei_table = pd.concat(nuclei, ignore_index=True) if nuclei else pd.DataFrame(columns=NUCLEI_COLUMNS)
        return summary_table.astype({"nuclei": "Int64"}), nuclei_table


def _unwritable(path: Path, name: str, output: Path, err: OSError) -> OutputError:
    message = f"{output}: could not be written ({err.strerror or err})"
    return OutputError(message, name, failure_row(path, message))


def _done_row(path: Path, output: Path, nuclei: int, diameter: float, scale: float) -> dict[str, Any]:
    """The ``summary.csv`` row of a segmented image."""
    return {
        "image": str(path),
        "output": output.name,
        "nuclei": int(nuclei),
        "diameter": round(diameter, 2) if math.isfinite(diameter) else None,
        "scale": round(scale, 4),
        "status": "ok",
    }


def _segment_large(
    run: PredictionRun,
    segmenter: Any,
    path: Path,
    name: str,
    block: int,
    *,
    block_format: str = "tif",
    client: Any = None,
    make_segmenter: Callable[[], Any] | None = None,
) -> None:
    """Blockwise segmentation of one large image into ``<name>_labels.tif`` (uint32) or
    ``<name>_labels.zarr``; its blocks on ``client``'s workers when one is given."""
    from .big import open_image, open_labels, segment_blockwise

    image = open_image(path)
    label_path = run.out / f"{name}_labels.{block_format}"
    partial = label_path.with_name(f".{label_path.name}.partial.{block_format}")
    try:
        _remove(partial)
        try:
            out = open_labels(str(partial), image.shape[:2], chunk=block)
        except OSError as err:
            raise _unwritable(path, name, label_path, err) from err
        result = segment_blockwise(
            segmenter, image, out, block=block, progress=True, client=client, make_segmenter=make_segmenter
        )
        del out
        _remove(label_path)
        os.replace(partial, label_path)
    finally:
        _remove(partial)
    summary = _done_row(path, label_path, result.nuclei, result.diameter, result.scale)
    run.finish(name, summary, result.table.assign(image=str(path))[NUCLEI_COLUMNS])


def _remove(path: Path) -> None:
    """Remove a file or a folder (a zarr array) if it is there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def segment_one(
    run: PredictionRun,
    segmenter: Any,
    path: Path,
    name: str,
    *,
    label_format: str = "png",
    overlay: bool = False,
    block: int = 0,
    block_format: str = "tif",
) -> dict[str, Any] | None:
    """Segment one image, write its outputs and record it as done in ``run``.

    An image of more than ``block`` x ``block`` pixels (``block`` > 0) is segmented block by
    block (:mod:`nucleilib.big`) into a uint32 TIFF, ``<name>_labels.tif``, without an overlay.

    Returns
    -------
    dict or None
        The image's ``summary.csv`` row when it could not be read or segmented (its
        ``status`` says why), None when it is done.

    Raises
    ------
    OutputError
        When an output cannot be written: every later image would fail the same way.
    """
    loaded = _load(path, block)
    if isinstance(loaded, dict):
        return loaded
    if loaded is None:
        return _segment_large_or_failure(run, segmenter, path, name, block, block_format=block_format)
    result = _segment_loaded(segmenter, path, loaded)
    if isinstance(result, dict):
        return result
    _write_outputs(run, segmenter, path, name, loaded, result, label_format=label_format, overlay=overlay)
    return None


def _load(path: Path, block: int) -> Any:
    """The image, None for one to segment block by block, or its failure row."""
    from .errors import DatasetError
    from .io import read_image

    if block:
        from .big import image_shape

        try:
            height, width = image_shape(path)
        except Exception:  # noqa: BLE001 - unreadable headers are reported by read_image below
            height = width = 0
        if height * width > block * block:
            return None
    try:
        return read_image(path)
    except (DatasetError, ValueError) as err:
        return failure_row(path, str(err))


def _segment_large_or_failure(run: PredictionRun, segmenter: Any, path: Path, name: str, block: int, **how: Any) -> Any:
    from .errors import DatasetError

    try:
        _segment_large(run, segmenter, path, name, block, **how)
    except (DatasetError, ValueError) as err:
        return failure_row(path, str(err))
    return None


def _segment_loaded(segmenter: Any, path: Path, image: np.ndarray) -> Any:
    """The segmentation of a loaded image, or its failure row."""
    from .errors import DatasetError

    try:
        return segmenter.segment_instances(image)
    except (DatasetError, ValueError) as err:
        return failure_row(path, str(err))


def _write_outputs(
    run: PredictionRun,
    segmenter: Any,
    path: Path,
    name: str,
    image: np.ndarray,
    result: Any,
    *,
    label_format: str,
    overlay: bool,
) -> None:
    from .io import write_image, write_labels
    from .plotting import outline_overlay

    labels = result.labels
    writing = label_path = run.out / f"{name}_labels.{label_format}"
    try:
        write_labels(labels, label_path)
        if overlay:
            writing = run.out / f"{name}_overlay.png"
            write_image(outline_overlay(image, labels), writing)
    except OSError as err:
        raise _unwritable(path, name, writing, err) from err
    table = segmenter.measure(labels)
    table.insert(0, "image", str(path))
    run.finish(name, _done_row(path, label_path, len(table), result.diameter, result.scale), table[NUCLEI_COLUMNS])


#: Images read ahead of the network, and segmented images waiting to be written, in a serial run.
PIPELINE_DEPTH = 2


def _pipelined(
    run: PredictionRun,
    segmenter: Any,
    todo: Sequence[tuple[Path, str]],
    *,
    label_format: str,
    overlay: bool,
    block: int,
    block_format: str = "tif",
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """:func:`segment_one` of each image in one process, in three overlapping stages: a thread
    reads and decodes the next images while the network segments this one, and another writes
    the labels, overlay and table of the previous one. The queues between them hold at most
    :data:`PIPELINE_DEPTH` images, so memory stays flat however many images there are.
    Outputs are the same as :func:`segment_one`'s, image by image."""
    import queue
    import threading

    stop = threading.Event()
    loaded: queue.Queue[Any] = queue.Queue(maxsize=PIPELINE_DEPTH)
    to_write: queue.Queue[Any] = queue.Queue(maxsize=PIPELINE_DEPTH)
    written: queue.Queue[tuple[str, BaseException | None]] = queue.Queue()
    end = object()

    def put(target: queue.Queue[Any], item: Any) -> bool:
        while not stop.is_set():
            try:
                target.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read_ahead() -> None:
        for path, name in todo:
            if not put(loaded, (path, name, _load(path, block))):
                return
        put(loaded, end)

    def write_behind() -> None:
        while True:
            job = to_write.get()
            if job is end:
                return
            path, name, image, result = job
            try:
                _write_outputs(run, segmenter, path, name, image, result, label_format=label_format, overlay=overlay)
            except BaseException as err:  # noqa: BLE001 - handed to the main thread, which raises it
                written.put((name, err))
                return
            written.put((name, None))

    reader = threading.Thread(target=read_ahead, name="nuclei-read", daemon=True)
    writer = threading.Thread(target=write_behind, name="nuclei-write", daemon=True)
    reader.start()
    writer.start()

    def finished_writes(wait: bool = False) -> Iterator[tuple[str, None]]:
        while True:
            try:
                name, err = written.get(timeout=None) if wait else written.get_nowait()
            except queue.Empty:
                return
            if err is not None:
                raise err
            yield name, None
            wait = False

    def hand_to_writer(job: Any) -> None:
        while True:
            try:
                to_write.put(job, timeout=0.1)
                return
            except queue.Full:
                if not writer.is_alive():  # it stopped on an error: raise that error here
                    for _ in finished_writes(wait=True):
                        pass
                    raise RuntimeError("the writing thread stopped") from None

    pending = 0
    try:
        while (item := loaded.get()) is not end:
            path, name, image = item
            if isinstance(image, dict):
                yield name, image
                continue
            if image is None:
                yield name, _segment_large_or_failure(run, segmenter, path, name, block, block_format=block_format)
                continue
            result = _segment_loaded(segmenter, path, image)
            if isinstance(result, dict):
                yield name, result
                continue
            hand_to_writer((path, name, image, result))
            pending += 1
            for done in finished_writes():
                pending -= 1
                yield done
        hand_to_writer(end)
        while pending:
            for done in finished_writes(wait=True):
                pending -= 1
                yield done
    finally:
        # Interrupted or failed: stop reading, but finish and record what was already segmented.
        stop.set()
        if writer.is_alive():
            while True:
                try:
                    to_write.put(end, timeout=0.1)
                    break
                except queue.Full:
                    if not writer.is_alive():
                        break
            writer.join()
        reader.join(timeout=5)


# --------------------------------------------------------------------------- a Dask cluster


def _segment_remotely(make_segmenter: Callable[[], Any], path: str, image: np.ndarray) -> Any:
    """On a worker: the segmentation of one image, or its failure row."""
    from .big import _worker_segmenter

    segmenter, lock = _worker_segmenter(make_segmenter)
    with lock:
        return _segment_loaded(segmenter, Path(path), image)


def _clustered(
    run: PredictionRun,
    client: Any,
    local: Any,
    make_segmenter: Callable[[], Any],
    todo: Sequence[tuple[Path, str]],
    *,
    label_format: str,
    overlay: bool,
    block: int,
    block_format: str,
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """:func:`segment_one` of each image with the network on ``client``'s workers: this process
    reads the images and writes every output (with ``local``, this process's segmenter, which
    also plans large images' blocks), so the workers need no access to the files; at most two
    images per worker are in flight. A large image's blocks go to the workers too."""
    from collections import deque

    workers = max(1, len(client.scheduler_info().get("workers", {})))
    (recipe,) = client.scatter([make_segmenter], broadcast=True)
    in_flight: deque[Any] = deque()

    def finish(oldest: Any) -> tuple[str, dict[str, Any] | None]:
        path, name, image, future = oldest
        result = future.result()
        if isinstance(result, dict):
            return name, result
        _write_outputs(run, local, path, name, image, result, label_format=label_format, overlay=overlay)
        return name, None

    try:
        for path, name in todo:
            image = _load(path, block)
            if isinstance(image, dict):
                yield name, image
                continue
            if image is None:
                while in_flight:
                    yield finish(in_flight.popleft())
                yield (
                    name,
                    _segment_large_or_failure(
                        run,
                        local,
                        path,
                        name,
                        block,
                        block_format=block_format,
                        client=client,
                        make_segmenter=make_segmenter,
                    ),
                )
                continue
            in_flight.append(
                (path, name, image, client.submit(_segment_remotely, recipe, str(path), image, pure=False))
            )
            if len(in_flight) >= 2 * workers:
                yield finish(in_flight.popleft())
        while in_flight:
            yield finish(in_flight.popleft())
    finally:
        for *_, future in in_flight:
            future.cancel()


def local_cluster(workers: int) -> Any:
    """A :class:`dask.distributed.Client` of ``workers`` processes on this machine, one task at a
    time each, without a dashboard (closed with the client)."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster, set_as_default=False)


def connect(address: str) -> Any:
    """A :class:`dask.distributed.Client` of the scheduler at ``address`` (``tcp://host:8786``)."""
    from dask.distributed import Client

    try:
        return Client(address, timeout=30, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise NucleiError(f"--scheduler {address}: no Dask scheduler answered there ({err})") from err


def segment_many(
    run: PredictionRun,
    make_segmenter: Callable[[], Any],
    todo: Sequence[tuple[Path, str]],
    *,
    segmenter: Any = None,
    workers: int = 1,
    client: Any = None,
    label_format: str = "png",
    overlay: bool = False,
    block: int = 0,
    block_format: str = "tif",
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """:func:`segment_one` of each ``(path, name)`` of ``todo``, yielding ``(name, failure row or
    None)`` as images finish, in the order of ``todo``.

    With a Dask ``client`` (:func:`connect`), or ``workers`` above one (a :func:`local_cluster`
    of that many processes), the network runs on the cluster's workers, each building its own
    segmenter once with ``make_segmenter`` (a picklable callable that also sets its threads);
    this process reads and writes, and every output is what one process writes. Interrupted
    (KeyboardInterrupt), what was already segmented is written and recorded. ``segmenter``, if
    given, is the one ``make_segmenter`` builds, already built in this process.
    """
    how = {"label_format": label_format, "overlay": overlay, "block": block, "block_format": block_format}
    local = make_segmenter() if segmenter is None else segmenter
    if client is None and workers <= 1:
        yield from _pipelined(run, local, todo, **how)
        return
    own = client is None
    if own:
        client = local_cluster(workers)
    try:
        yield from _clustered(run, client, local, make_segmenter, todo, **how)
    finally:
        if own:
            client.close()
            client.cluster.close()
