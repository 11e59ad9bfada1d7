"""U-Net speed on this machine: training crops/s and inference ms per 256x256 image.

Each inference figure is also given as a ratio against plain ``model.predict`` on
the same input in the same run. A benchmark, not a test:

    .venv/bin/python benchmarks/unet_speed.py [--model unet-dsb2018] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def _median_ms(fn, x: np.ndarray, repeats: int) -> float:
    """Median milliseconds of ``fn(x)`` over ``repeats`` calls, after one untimed call."""
    fn(x)  # warm-up: tracing, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="unet-dsb2018", help="shipped model name or folder; 'fresh' for an untrained one"
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--train-steps", type=int, default=20)
    args = parser.parse_args()

    import tensorflow as tf

    from nucleilib import models
    from nucleilib.backends import keras_predict_fn
    from nucleilib.training import TrainConfig

    if args.model == "fresh":
        config = models.ModelConfig()
        model = models.build_unet(config)
    else:
        model, config = models.load_model(args.model)
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores, "
        f"intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
        f"GPUs: {len(tf.config.list_physical_devices('GPU'))}"
    )
    print(f"model: {model.name}, {model.count_params():,} parameters")
    rng = np.random.default_rng(0)
    fast = keras_predict_fn(model)
    for batch in (1, 16):
        x = rng.random((batch, 256, 256, config.in_channels), dtype=np.float32)
        plain = _median_ms(lambda b: model.predict(b, batch_size=len(b), verbose=0), x, args.repeats) / batch
        ours = _median_ms(fast, x, args.repeats) / batch
        print(
            f"inference, batch {batch:2d}: model.predict {plain:6.1f} ms/image, "
            f"tf.function call {ours:6.1f} ms/image (ratio {plain / ours:.2f}x)"
        )

    train_config = TrainConfig(model=config)
    trainable = models.compile_model(
        models.build_model(config), learning_rate=train_config.learning_rate, border_weight=train_config.border_weight
    )
    x = rng.random(
        (train_config.batch_size, train_config.crop, train_config.crop, config.in_channels), dtype=np.float32
    )
    y = (rng.random((train_config.batch_size, train_config.crop, train_config.crop, len(config.outputs))) > 0.5).astype(
        np.float32
    )
    trainable.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(args.train_steps):
        trainable.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    print(
        f"training, crop {train_config.crop}, batch {train_config.batch_size}: "
        f"{args.train_steps * train_config.batch_size / seconds:.1f} crops/s (network only, no input pipeline)"
    )


if __name__ == "__main__":
    main()
