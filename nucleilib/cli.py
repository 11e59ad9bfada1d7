"""The ``nuclei`` command line tool."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .data import DATA_ENV, DEFAULT_DATASET, DatasetError, content_fingerprint, data_root
from .deploy import BACKENDS
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

    predict = commands.add_parser(
        "predict", help="segment your own images with a trained model",
        description="Segment images (PNG, TIFF, JPEG; 8- or 16-bit; grey, RGB or RGBA; any size) and write one "
                    "uint16 label image per input, a per-image summary.csv and a per-nucleus nuclei.csv.",
    )
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    predict.add_argument("-o", "--output", required=True, help="output folder (never an input folder)")
    predict.add_argument("--model", default="unet-dsb2018", help="shipped model name or model folder (default: %(default)s)")
    predict.add_argument("--format", choices=("png", "tif"), default="png", help="label image format (default: %(default)s)")
    predict.add_argument("--overlay", action="store_true", help="also write the image with nucleus outlines")
    predict.add_argument("--overwrite", action="store_true", help="replace existing output files")
    predict.add_argument("--recursive", action="store_true", help="look for images in sub-folders too")
    predict.add_argument("--tile", type=int, default=512, help="tile size for large images (default: %(default)s)")
    predict.add_argument("--separation", choices=("components", "watershed", "borders"),
                         help="instance separation method (default: the model's)")
    predict.add_argument("--threshold", type=float, help="foreground probability threshold (default: the model's)")
    predict.add_argument("--backend", choices=BACKENDS, default="keras",
                         help="inference engine: keras, XLA-compiled keras, or a TensorFlow Lite model shipped "
                              "beside the weights (model-float16.tflite, model-int8.tflite) (default: %(default)s)")

    evaluate = commands.add_parser(
        "evaluate", help="score label images against DSB-layout annotations",
        description="Compare label images in PRED (named <id>.png, <id>_labels.png or .tif) with the "
                    "annotations of a DSB-layout folder GT (<id>/masks/*.png).",
    )
    evaluate.add_argument("pred", metavar="PRED", help="folder of predicted label images")
    evaluate.add_argument("gt", metavar="GT", help="DSB-layout folder of annotated samples")
    evaluate.add_argument("--csv", help="write the per-image metrics to this CSV file")
    return parser


IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


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
        if path.is_dir():
            folders.append(path.resolve())
            pattern = path.rglob("*") if recursive else path.iterdir()
            found = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files.extend(found)
        elif path.is_file():
            folders.append(path.resolve().parent)
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files, folders, problems


def _output_names(files: Sequence[Path]) -> list[str]:
    """One output stem per input; repeated stems get -2, -3, ... appended."""
    seen: dict[str, int] = {}
    names = []
    for path in files:
        count = seen.get(path.stem, 0) + 1
        seen[path.stem] = count
        names.append(path.stem if count == 1 else f"{path.stem}-{count}")
    return names


def run_predict(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd
    from PIL import Image
    from tqdm import tqdm

    from .data import read_image
    from .inference import object_table

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
    names = _output_names(files)
    targets = []
    for name in names:
        targets.append(out / f"{name}_labels.{args.format}")
        if args.overlay:
            targets.append(out / f"{name}_overlay.png")
    targets += [out / "summary.csv", out / "nuclei.csv"]
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        _error(f"{existing[0]}: exists ({len(existing)} output file(s) would be replaced); use --overwrite to replace them")
        return 1
    from .deploy import load_predict_fn
    from .segmentation import labels_from_probabilities, predict_probabilities

    predict_fn, config = load_predict_fn(args.model, args.backend)
    if args.threshold is not None:
        if not 0 < args.threshold < 1:
            raise ValueError(f"--threshold must be between 0 and 1, got {args.threshold}")
        config = dataclasses.replace(config, threshold=args.threshold)
    out.mkdir(parents=True, exist_ok=True)
    summary, nuclei = [], []
    for path, name in zip(tqdm(files, desc="segmenting", unit="img"), names):
        try:
            image = read_image(path)
            probs = predict_probabilities(None, config, image, tile=args.tile, predict_fn=predict_fn)
            labels = labels_from_probabilities(probs, config, args.separation)
        except DatasetError as err:
            _error(str(err))
            summary.append({"image": str(path), "output": "", "nuclei": None, "status": f"error: {err}"})
            continue
        if labels.max() > np.iinfo(np.uint16).max:
            _error(f"{path}: {labels.max()} nuclei do not fit a uint16 label image")
            summary.append({"image": str(path), "output": "", "nuclei": int(labels.max()), "status": "error: too many nuclei"})
            continue
        label_path = out / f"{name}_labels.{args.format}"
        labels16 = labels.astype(np.uint16)
        if args.format == "png":
            Image.fromarray(labels16).save(label_path)
        else:
            import tifffile

            tifffile.imwrite(label_path, labels16, compression="zlib")
        if args.overlay:
            from skimage.segmentation import find_boundaries

            overlay = image.copy()
            overlay[find_boundaries(labels, mode="inner")] = (255, 255, 0)
            Image.fromarray(overlay).save(out / f"{name}_overlay.png")
        table = object_table(labels)
        table.insert(0, "image", str(path))
        nuclei.append(table)
        summary.append({"image": str(path), "output": label_path.name, "nuclei": int(len(table)), "status": "ok"})
    pd.DataFrame(summary).astype({"nuclei": "Int64"}).to_csv(out / "summary.csv", index=False)
    columns = ["image", "label", "area", "centroid_y", "centroid_x"]
    (pd.concat(nuclei, ignore_index=True)[columns] if nuclei else pd.DataFrame(columns=columns)).to_csv(
        out / "nuclei.csv", index=False)
    errors = sum(row["status"] != "ok" for row in summary)
    failed = errors + len(problems)
    print(f"{len(summary) - errors} image(s) segmented, {failed} problem(s); results in {out}")
    return 1 if failed else 0


def run_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from .data import read_raw, read_sample, sample_folders
    from .evaluation import evaluate_pairs, summarise

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
            _error(f"{predictions[folder.name]}: label image of shape {pred.shape} does not match "
                   f"the annotation's {sample.labels.shape}")
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
        elif args.command == "predict":
            return run_predict(args)
        elif args.command == "evaluate":
            return run_evaluate(args)
        return 0
    except (DatasetError, StudyError, ValueError) as err:
        print(f"nuclei: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nuclei: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
