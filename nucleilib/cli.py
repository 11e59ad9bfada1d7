"""The ``nuclei`` command line tool: ``predict``, ``evaluate``, ``fetch``.

Further commands plug in through the ``nuclei.commands`` entry point group: each entry
is a function ``register(subparsers)`` that adds its sub-command and returns a mapping
of command name to handler. The study adds ``study`` and ``book`` this way
(:mod:`nucleilib.study.cli`), so the tool never imports the study.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .data import DATA_ENV, DEFAULT_DATASET, content_fingerprint, data_root
from .errors import DatasetError, NucleiError
from .io import IMAGE_SUFFIXES, LABEL_FORMATS, find_images, is_zarr, unique_stems

#: Choices of ``--separation`` (:data:`nucleilib.inference.METHODS`, spelt out so that
#: ``nuclei --help`` need not import scikit-image).
SEPARATION_CHOICES = ("components", "watershed", "borders")
#: Choices of ``--backend`` (:data:`nucleilib.backends.BACKENDS`, spelt out for the same reason;
#: tests/test_cli.py checks that both copies agree).
BACKEND_CHOICES = ("keras", "xla", "tflite-float16", "tflite-int8")
#: Choices of ``--colour-input`` (:data:`nucleilib.preprocess.COLOUR_INPUTS`, spelt out too).
COLOUR_INPUT_CHOICES = ("rgb", "grey", "hematoxylin")

#: Entry point group of further sub-commands (see the module docstring).
COMMANDS_GROUP = "nuclei.commands"

Handler = Callable[[argparse.Namespace], int]


def _plugin_commands(commands: Any) -> dict[str, Handler]:
    from importlib.metadata import entry_points

    handlers: dict[str, Handler] = {}
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        handlers.update(entry.load()(commands))
    return handlers


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(
        prog="nuclei",
        description="Nuclei segmentation (DSB2018 / BBBC038): segment your images, score them, fetch the data, "
        "run the study and build its book.",
    )
    parser.add_argument("--version", action="version", version=f"nuclei {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    handlers = _plugin_commands(commands)

    fetch = commands.add_parser(
        "fetch", help=f"download and verify the data set (or check the local copy named by ${DATA_ENV})"
    )
    fetch.add_argument("--verify", action="store_true", help="also check the content fingerprint of a local copy")

    predict = commands.add_parser(
        "predict",
        help="segment your own images with a trained model",
        description="Segment images (PNG, TIFF, JPEG; 8- or 16-bit; grey, RGB or RGBA; any size) and write one "
        "uint16 label image per input, a per-image summary.csv and a per-nucleus nuclei.csv.",
    )
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    predict.add_argument("-o", "--output", required=True, help="output folder (never an input folder)")
    predict.add_argument(
        "--model", default="unet-dsb2018", help="shipped model name or model folder (default: %(default)s)"
    )
    predict.add_argument(
        "--format", choices=LABEL_FORMATS, default="png", help="label image format (default: %(default)s)"
    )
    predict.add_argument("--overlay", action="store_true", help="also write the image with nucleus outlines")
    predict.add_argument("--overwrite", action="store_true", help="replace existing output files")
    predict.add_argument("--recursive", action="store_true", help="look for images in sub-folders too")
    predict.add_argument("--tile", type=int, default=512, help="tile size for large images (default: %(default)s)")
    predict.add_argument(
        "--separation", choices=SEPARATION_CHOICES, help="instance separation method (default: the model's)"
    )
    predict.add_argument("--threshold", type=float, help="foreground probability threshold (default: the model's)")
    predict.add_argument(
        "--diameter",
        default="auto",
        metavar="auto|PIXELS|none",
        help="typical nucleus diameter of your images in pixels, 'auto' to estimate it per image, or 'none' to "
        "segment at the images' own scale; a scale-aware model rescales images so that nuclei have the size it works at "
        "(its config.json diameter; default: %(default)s; the value used goes into summary.csv)",
    )
    predict.add_argument(
        "--colour-input",
        choices=COLOUR_INPUT_CHOICES,
        help="what a stained image (colour, bright background) becomes: its three channels (rgb), their mean (grey) "
        "or its haematoxylin channel (hematoxylin); grey and fluorescence images are unaffected "
        "(default: the model's, its config.json colour_input)",
    )
    predict.add_argument(
        "--tta",
        type=int,
        choices=(1, 4, 8),
        default=1,
        help="test-time augmentation: average 1 (none), 4 (flips) or 8 (flips and rotations) views (default: 1)",
    )
    predict.add_argument(
        "--block",
        type=int,
        default=4096,
        metavar="PIXELS",
        help="images of more than PIXELS x PIXELS pixels (a slide region, a mosaic) are segmented block by block "
        "in blocks of that side, a multiple of 16, into a uint32 label image (--block-format), with memory "
        "bounded by the block (the shipped model: about 2.7 GB at 4096, 2 GB at 2048); 0: never "
        "(default: %(default)s)",
    )
    predict.add_argument(
        "--block-format",
        choices=("tif", "zarr"),
        default="tif",
        help="label image of an image segmented block by block: an uncompressed TIFF or a chunked, compressed "
        "zarr array (a <name>_labels.zarr folder) (default: %(default)s)",
    )
    predict.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes segmenting images (and blocks of large images) side by side on this machine, a Dask "
        "LocalCluster with the machine's cores shared among them; the results are the same as with one "
        "(default: %(default)s)",
    )
    predict.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the network on the workers of the Dask scheduler at ADDRESS (tcp://host:8786), for many images "
        "and for the blocks of large images; this process reads the images and writes every output, so the workers "
        "need the model's Python environment but not your files",
    )
    predict.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads of the network (TensorFlow and TensorFlow Lite) in each process; default: the machine's "
        "cores, shared among --workers. On a machine busy with other work, fewer can be faster",
    )
    predict.add_argument(
        "--backend",
        choices=("auto", *BACKEND_CHOICES),
        default="auto",
        help="inference engine: keras, XLA-compiled keras, or a TensorFlow Lite model shipped "
        "beside the weights (model-float16.tflite, model-int8.tflite, shipped only when their accuracy "
        "passes the speed chapter's rule); auto: the faster of those on this CPU (int8 where it has int8 "
        "dot-product instructions such as AVX-512 VNNI, else float16), else keras (default: %(default)s)",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="score label images against DSB-layout annotations",
        description="Compare label images in PRED (named <id>.png, <id>_labels.png or .tif) with the "
        "annotations of a DSB-layout folder GT (<id>/masks/*.png).",
    )
    evaluate.add_argument("pred", metavar="PRED", help="folder of predicted label images")
    evaluate.add_argument("gt", metavar="GT", help="DSB-layout folder of annotated samples")
    evaluate.add_argument("--csv", help="write the per-image metrics to this CSV file")

    export = commands.add_parser(
        "export",
        help="write a model as a bioimage.io package (deepImageJ, ilastik, QuPath)",
        description="Write the network as a bioimage.io model package (one .zip: rdf.yaml, TensorFlow SavedModel "
        "and Keras HDF5 weights, test tensors, cover, README.md saying which pre- and post-processing the "
        "package leaves to the caller). Validated with bioimageio.spec when it is installed.",
    )
    export.add_argument("--bioimageio", required=True, metavar="OUT.zip", help="the package file to write")
    export.add_argument(
        "--model", default="unet-dsb2018", help="shipped model name or model folder (default: %(default)s)"
    )
    export.add_argument(
        "--sample", metavar="IMAGE", help="a fluorescence image for the test tensors and cover (default: synthetic)"
    )
    export.add_argument("--overwrite", action="store_true", help="replace an existing package file")
    handlers.update(predict=run_predict, evaluate=run_evaluate, fetch=run_fetch, export=run_export)
    return parser, handlers


def _error(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"nuclei: error: {message}", file=sys.stderr)


def _collect_images(inputs: Sequence[str], recursive: bool) -> tuple[list[Path], list[Path], list[str]]:
    """Image files named or found in ``inputs``; the folders they come from; problems."""
    files: list[Path] = []
    folders: list[Path] = []
    problems: list[str] = []
    for item in inputs:
        path = Path(item)
        if is_zarr(path):
            folders.append(path.resolve().parent)
            files.append(path)
        elif path.is_dir():
            folders.append(path.resolve())
            found = find_images(path, recursive=recursive)
            if not found:
                problems.append(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files.extend(found)
        elif path.is_file():
            folders.append(path.resolve().parent)
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, folders, problems


def run_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .batch import OutputError, PredictionRun, segment_many

    files, folders, problems = _collect_images(args.inputs, args.recursive)
    for problem in problems:
        _error(problem)
    if not files:
        _error("nothing to segment")
        return 1
    out = Path(args.output).resolve()
    for folder in folders:
        if out == folder or folder in out.parents:
            _error(f"{args.output}: the output folder is, or is inside, the input folder {folder}; choose another")
            return 2
    if args.backend == "auto":
        from .backends import default_backend

        args.backend = default_backend(args.model)
    names = unique_stems(files)
    targets = []
    for name in names:
        targets.append(out / f"{name}_labels.{args.format}")
        if args.overlay:
            targets.append(out / f"{name}_overlay.png")
    targets += [out / "summary.csv", out / "nuclei.csv"]
    settings = {
        "model": args.model,
        "backend": args.backend,
        "diameter": args.diameter,
        "colour_input": args.colour_input,
        "tta": args.tta,
        "separation": args.separation,
        "threshold": args.threshold,
        "tile": args.tile,
        "format": args.format,
        "overlay": args.overlay,
        "block": args.block,
        "block_format": args.block_format,
    }
    if args.block < 0 or args.block % 16:
        _error(f"--block must be 0 or a positive multiple of 16, got {args.block}")
        return 2
    if args.workers < 1:
        _error(f"--workers must be at least 1, got {args.workers}")
        return 2
    if args.threads is not None and args.threads < 1:
        _error(f"--threads must be at least 1, got {args.threads}")
        return 2
    if args.scheduler and args.workers > 1:
        _error("--workers starts a cluster on this machine and --scheduler uses another one: give one of them")
        return 2
    recipe = _segmenter_recipe(args)
    segmenter = recipe()  # a model that cannot be loaded stops the run before anything is written
    client = None
    if args.scheduler:
        from .batch import connect

        client = connect(args.scheduler)  # an unreachable scheduler stops the run before anything is written
    run = PredictionRun.start(out, settings, targets=targets, overwrite=args.overwrite)
    todo = [(path, name) for path, name in zip(files, names) if not run.is_done(name)]
    if len(todo) < len(files):
        print(f"resuming: {len(files) - len(todo)} of {len(files)} image(s) already done in {out}, skipped")
    failures: dict[str, dict[str, Any]] = {}
    finished = segment_many(
        run,
        recipe,
        todo,
        segmenter=segmenter,
        workers=args.workers,
        client=client,
        label_format=args.format,
        overlay=args.overlay,
        block=args.block,
        block_format=args.block_format,
    )
    try:
        for name, failure in tqdm(finished, total=len(todo), desc="segmenting", unit="img"):
            if failure is not None:
                _error(failure["status"].removeprefix("error: "))
                failures[name] = failure
    except OutputError as err:
        failures[err.name] = err.row
        done = _write_tables(run, names, failures)
        _error(
            f"{err} (free space or fix the folder); stopped: {done} of {len(files)} image(s) done, run the same command again to finish"
        )
        return 1
    except KeyboardInterrupt:
        done = _write_tables(run, names, failures)
        _error(f"interrupted: {done} of {len(files)} image(s) done; run the same command again to finish")
        return 130
    finally:
        if client is not None:
            client.close()
    _write_tables(run, names, failures)
    failed = len(failures) + len(problems)
    print(f"{len(files) - len(failures)} image(s) segmented, {failed} problem(s); results in {out}")
    return 1 if failed else 0


def build_segmenter(
    model: str,
    *,
    backend: str,
    tile: int,
    diameter: str | None,
    tta: int,
    threshold: float | None,
    separation: str | None,
    colour_input: str | None,
    num_threads: int | None = None,
) -> Any:
    """The segmenter of ``nuclei predict``'s options (module level, so worker processes can
    build their own). ``num_threads`` sets TensorFlow's threads (before its first operation)
    and the TensorFlow Lite interpreter's."""
    from .segmenter import Segmenter

    if num_threads is not None:
        set_tensorflow_threads(num_threads)
    segmenter = Segmenter.from_pretrained(
        model,
        backend=backend,
        num_threads=num_threads,
        tile=tile,
        diameter=None if str(diameter).lower() == "none" else diameter,
        tta=tta,
    )
    return segmenter.with_settings(threshold=threshold, separation=separation, colour_input=colour_input)


def model_files(folder: str | os.PathLike[str]) -> dict[str, bytes]:
    """The files of a model folder (weights, configuration, TensorFlow Lite models, card), to
    send to workers that cannot read the folder."""
    return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir()) if path.is_file()}


def build_segmenter_from_files(files: dict[str, bytes], **options: Any) -> Any:
    """:func:`build_segmenter` of a model sent as :func:`model_files`: written once per machine
    into a folder named by its content's digest (in the temporary directory), then loaded."""
    import hashlib
    import shutil
    import tempfile

    digest = hashlib.sha256()
    for name, content in sorted(files.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    folder = Path(tempfile.gettempdir()) / f"nuclei-model-{digest.hexdigest()[:16]}"
    if not folder.is_dir():
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        for name, content in files.items():
            (partial / name).write_bytes(content)
        try:
            os.replace(partial, folder)
        except OSError:  # another process on this machine wrote it first
            shutil.rmtree(partial, ignore_errors=True)
    return build_segmenter(str(folder), **options)


def set_tensorflow_threads(threads: int) -> None:
    """Run TensorFlow's operations on ``threads`` threads, one operation at a time (a no-op once
    TensorFlow has run an operation in this process)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised: the threads stay as they are


def _threads_per_process(args: argparse.Namespace) -> int | None:
    if args.threads is not None:
        return int(args.threads)
    if args.workers > 1:
        return max(1, (os.cpu_count() or 1) // args.workers)
    return None


def _segmenter_recipe(args: argparse.Namespace) -> Any:
    """A picklable callable that builds the segmenter of ``args``; with ``--scheduler``, a model
    folder travels inside it, so the cluster's workers need no access to it."""
    import functools

    if getattr(args, "scheduler", None) and Path(args.model).is_dir():
        build, model = build_segmenter_from_files, model_files(args.model)
    else:
        build, model = build_segmenter, args.model
    return functools.partial(
        build,
        model,
        backend=args.backend,
        tile=args.tile,
        diameter=args.diameter,
        tta=args.tta,
        threshold=args.threshold,
        separation=args.separation,
        colour_input=args.colour_input,
        num_threads=_threads_per_process(args),
    )


def _write_tables(run: Any, names: Sequence[str], failures: dict[str, dict[str, Any]]) -> int:
    """Write ``summary.csv`` and ``nuclei.csv``; return how many images are done."""
    from .io import write_table

    summary, nuclei = run.tables(names, failures)
    write_table(summary, run.out / "summary.csv")
    write_table(nuclei, run.out / "nuclei.csv")
    return int((summary["status"] == "ok").sum())


def run_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from .data import read_sample, sample_folders
    from .evaluation import evaluate_pairs, summarise
    from .io import read_raw

    pred_dir = Path(args.pred)
    if not pred_dir.is_dir():
        raise DatasetError(f"{pred_dir}: prediction folder not found")
    predictions = {}
    for path in sorted(pred_dir.iterdir()):
        if path.suffix.lower() in (".png", ".tif", ".tiff"):
            stem = path.stem[: -len("_labels")] if path.stem.endswith("_labels") else path.stem
            predictions[stem] = path
    truths, preds, ids = [], [], []
    missing = 0
    for folder in sample_folders(args.gt):
        if folder.name not in predictions:
            missing += 1
            continue
        sample = read_sample(folder)
        pred = read_raw(predictions[folder.name])
        if pred.ndim != 2 or pred.shape != sample.labels.shape:
            _error(
                f"{predictions[folder.name]}: label image of shape {pred.shape} does not match "
                f"the annotation's {sample.labels.shape}"
            )
            continue
        truths.append(sample.labels)
        preds.append(pred)
        ids.append(folder.name)
    if not ids:
        raise DatasetError(f"{pred_dir}: no label image matches a sample of {args.gt}")
    frame = evaluate_pairs(truths, preds, ids=ids)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(summarise(frame).round(4).to_string())
    print(f"{len(ids)} image(s) evaluated; {missing} annotated sample(s) without a prediction")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .bioimageio import export_package, validate_package, validation_problems
    from .io import read_image

    sample = read_image(args.sample) if args.sample else None
    package = export_package(args.model, args.bioimageio, sample=sample, overwrite=args.overwrite)
    print(f"bioimage.io package: {package.path} ({package.bytes / 1e6:.1f} MB; {', '.join(package.files)})")
    try:
        summary = validate_package(package.path)
    except NucleiError as err:
        print(f"not validated: {err}")
        return 0
    problems = validation_problems(summary)
    print(f"bioimageio.spec validation: {summary.status}" + "".join(f"\n  {line}" for line in problems))
    return 0 if not problems else 1


def run_fetch(args: argparse.Namespace) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    try:
        return int(handlers[args.command](args))
    except (NucleiError, ValueError) as err:
        print(f"nuclei: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nuclei: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
