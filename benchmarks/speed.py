"""Reproduce the figures of the speed chapter (notebooks/06_speed.py) from the command line.

Inference milliseconds per image by image size and batch for Keras ``predict``,
a ``tf.function`` call, XLA and TensorFlow Lite float32 / float16 / int8 (with
the thread counts used); TensorFlow Lite with one thread and with one per core;
model file sizes; the accuracy of each engine on the test split (foreground IoU
and DSB score); and the training throughput of the plain, tuned, bfloat16 and
XLA set-ups, as ratios. A benchmark, not a test; it writes nothing into the
package or the artefacts unless ``--out`` points there:

    .venv/bin/python benchmarks/speed.py [--test-limit 10] [--out /tmp/speed]
    .venv/bin/python benchmarks/speed.py --sizes 256 --batches 1 --skip-accuracy --skip-throughput

The accuracy and throughput parts need the DSB2018 data (``$NUCLEI_DATA_DIR``)
and a split file (``<artefacts>/splits/split-<split>.csv``, made by the data chapter).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="unet-dsb2018", help="shipped model name or model folder (default: %(default)s)"
    )
    parser.add_argument("--artefacts", default="artefacts/cpu", help="folder with splits/ (default: %(default)s)")
    parser.add_argument("--split", default="original", help="split name (default: %(default)s)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[256, 512, 1024], help="image sides (default: %(default)s)"
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16], help="batch sizes (default: %(default)s)")
    parser.add_argument(
        "--max-batch-pixels",
        type=int,
        default=16 * 256 * 256,
        help="time a batch at a size only when batch * size^2 is at most this (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow Lite threads (default: CPU count)")
    parser.add_argument("--test-limit", type=int, default=None, help="only the first N test images (default: all)")
    parser.add_argument("--train-images", type=int, default=48, help="training images for calibration and throughput")
    parser.add_argument(
        "--calibration-crops", type=int, default=32, help="int8 calibration crops (default: %(default)s)"
    )
    parser.add_argument("--calibration-size", type=int, default=256, help="side of the calibration crops")
    parser.add_argument("--train-crop", type=int, default=128, help="training crop side (default: %(default)s)")
    parser.add_argument("--train-batch-size", type=int, default=8, help="training batch (default: %(default)s)")
    parser.add_argument("--train-steps", type=int, default=8, help="timed training steps (default: %(default)s)")
    parser.add_argument("--train-warmup", type=int, default=2, help="untimed training steps (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-accuracy", action="store_true", help="no test-split evaluation (no data needed)")
    parser.add_argument("--skip-throughput", action="store_true", help="no training throughput")
    parser.add_argument("--out", type=Path, help="write the tables as CSV and a summary JSON into this folder")
    return parser


def _show(title: str, table) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    print(f"\n== {title}")
    with pd.option_context("display.width", 160, "display.max_columns", 30):
        print(table.round(4).to_string())


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import numpy as np
    import pandas as pd
    import tensorflow as tf

    from nucleilib import data, export, models, training
    from nucleilib.backends import TFLITE_KINDS, tflite_predict_fn
    from nucleilib.study import benchmarks
    from nucleilib.study import manifest as mf

    tf.get_logger().setLevel("ERROR")
    start = time.perf_counter()
    cores = os.cpu_count() or 1
    threads = args.threads or cores
    model, config = models.load_model(args.model)
    need_data = not (args.skip_accuracy and args.skip_throughput)
    train_x = train_y = None
    test_samples: list = []
    if need_data:
        split_ids = mf.load_split(mf.split_file(args.artefacts, args.split))
        rng = np.random.default_rng(args.seed)
        pick = sorted(rng.choice(split_ids["train"], min(args.train_images, len(split_ids["train"])), replace=False))
        train_samples = data.load_dataset(data.data_root(), ids=pick)
        train_config = training.TrainConfig(
            model=config, crop=args.train_crop, batch_size=args.train_batch_size, seed=args.seed
        )
        train_x, train_y = training.prepare_arrays(train_samples, train_config)
        if not args.skip_accuracy:
            test_ids = split_ids["test"][: args.test_limit]
            test_samples = data.load_dataset(data.data_root(), ids=test_ids)
    print(
        f"TensorFlow {tf.__version__}; {cores} CPU cores; TensorFlow intra-op threads "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default (one per core)'}, inter-op "
        f"{tf.config.threading.get_inter_op_parallelism_threads() or 'default'}; TensorFlow Lite threads {threads}; "
        f"bfloat16 support {benchmarks.bfloat16_support()}; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"model {args.model}: {model.count_params():,} parameters")

    # Conversions and sizes
    if train_x is not None:
        calibration = export.representative_crops(
            train_x, n=args.calibration_crops, size=args.calibration_size, seed=args.seed
        )
        calibration_source = "training crops"
    else:  # no data: calibrate on random images (timing only; accuracy would be meaningless)
        rng = np.random.default_rng(args.seed)
        calibration = [
            rng.random((args.calibration_size, args.calibration_size, config.in_channels), dtype=np.float32)
            for _ in range(args.calibration_crops)
        ]
        calibration_source = "random images (no data loaded)"
    flat, seconds = {}, {}
    for kind in TFLITE_KINDS:
        t0 = time.perf_counter()
        flat[kind] = export.to_tflite(model, kind, calibration if kind == "int8" else None)
        seconds[kind] = time.perf_counter() - t0
    sizes = pd.DataFrame(
        [{"model": f"TFLite {k}", "MB": len(flat[k]) / 1e6, "conversion_s": seconds[k]} for k in TFLITE_KINDS]
    ).set_index("model")
    sizes.loc["Keras float32 (in memory)"] = [4 * model.count_params() / 1e6, np.nan]
    folder = models.model_folder(args.model)
    if (folder / "weights.npz").is_file():
        sizes.loc["weights.npz"] = [(folder / "weights.npz").stat().st_size / 1e6, np.nan]
    _show(f"model sizes (int8 calibrated on {len(calibration)} {calibration_source})", sizes)

    # Inference time
    fns = benchmarks.benchmark_predict_fns(model, flat, num_threads=threads)
    grid = benchmarks.timing_grid(args.sizes, args.batches, args.max_batch_pixels)
    timing = benchmarks.time_backends(fns, grid, repeats=args.repeats, warmup=args.warmup, channels=config.in_channels)
    labels = list(benchmarks.BENCHMARK_BACKENDS.values())
    ms = timing.pivot_table(index=["size", "batch"], columns="label", values="ms_per_image")[labels]
    _show(f"inference, ms per image (median of {args.repeats}; TensorFlow Lite with {threads} threads)", ms)
    _show("speed-up over the tf.function call", ms.rdiv(ms["Keras, tf.function"], axis=0))
    smallest = min(args.sizes)
    rows = []
    for kind in TFLITE_KINDS:
        for n in sorted({1, threads}):
            t = benchmarks.time_inference(
                tflite_predict_fn(flat[kind], num_threads=n),
                smallest,
                1,
                args.repeats,
                args.warmup,
                channels=config.in_channels,
            )
            rows.append(
                {
                    "model": f"TFLite {kind}",
                    "threads": n,
                    "ms_per_image": t.ms_per_image,
                    "min_ms_per_image": t.min_ms_per_image,
                }
            )
    thread_table = pd.DataFrame(rows).set_index(["model", "threads"])
    _show(f"TensorFlow Lite threads, {smallest}x{smallest}, batch 1", thread_table)

    summary: dict = {
        "cores": cores,
        "tflite_threads": threads,
        "load_average": os.getloadavg()[0],
        "bfloat16_support": benchmarks.bfloat16_support(),
    }
    accuracy = scores = throughput = None
    if not args.skip_accuracy:
        accuracy_fns = {name: fns[name] for name in ("keras", "xla", "tflite-float16", "tflite-int8")}
        scores = benchmarks.evaluate_backends(accuracy_fns, config, test_samples, reference="keras", progress=True)
        accuracy = benchmarks.accuracy_summary(scores, reference="keras")
        _show(f"accuracy on {len(test_samples)} test images ({args.split} split)", accuracy)
        summary["int8_iou_loss"] = float(-accuracy.loc[benchmarks.BENCHMARK_BACKENDS["tflite-int8"], "IoU change"])
    if not args.skip_throughput:
        train_config = training.TrainConfig(
            model=config, crop=args.train_crop, batch_size=args.train_batch_size, seed=args.seed
        )
        rates = {
            v: benchmarks.training_throughput(
                train_config, train_x, train_y, v, steps=args.train_steps, warmup=args.train_warmup
            )
            for v in benchmarks.THROUGHPUT_VARIANTS
        }
        throughput = pd.DataFrame({"crops_per_s": pd.Series(rates)})
        throughput["vs_plain"] = throughput["crops_per_s"] / rates["plain"]
        throughput["vs_tuned"] = throughput["crops_per_s"] / rates["tuned"]
        _show(
            f"training throughput (crop {args.train_crop}, batch {args.train_batch_size}, {args.train_steps} steps)",
            throughput,
        )
    minutes = (time.perf_counter() - start) / 60
    summary["minutes"] = minutes
    print(f"\n{minutes:.1f} min")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        timing.to_csv(args.out / "speed-timing.csv", index=False)
        thread_table.to_csv(args.out / "speed-threads.csv")
        sizes.to_csv(args.out / "speed-sizes.csv")
        if scores is not None and accuracy is not None:
            scores.to_csv(args.out / "speed-accuracy.csv", index=False)
            accuracy.to_csv(args.out / "speed-accuracy-summary.csv")
        if throughput is not None:
            throughput.to_csv(args.out / "speed-throughput.csv")
        (args.out / "speed-summary.json").write_text(
            json.dumps({**vars(args), "out": str(args.out), **summary}, indent=2, default=str) + "\n"
        )
        print(f"tables written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
