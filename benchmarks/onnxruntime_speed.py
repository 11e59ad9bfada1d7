"""ONNX Runtime against the project's own backends: the shipped U-Net's forward pass, same process,
same images.

ONNX Runtime is not a dependency of the project (it did not beat TensorFlow Lite where it was
measured; see the README), so this benchmark needs it and the converter installed beside the
environment, in a folder of their own so that the project's pins stay as they are:

    .venv/bin/pip install --target /tmp/ort --no-deps onnxruntime==1.20.1 tf2onnx==1.16.1 \\
        onnx==1.16.2 coloredlogs humanfriendly sympy mpmath
    PYTHONPATH=/tmp/ort .venv/bin/python benchmarks/onnxruntime_speed.py [--batches 1 8]

It converts the shipped Keras model with tf2onnx (opset 17, any image size), runs it with ONNX
Runtime's CPU provider on all cores with every graph optimisation, and prints for each engine the
median milliseconds per 256x256 image at each batch size and its largest probability difference
from Keras on the first DSB images. Needs the DSB2018 data ($NUCLEI_DATA_DIR).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ENGINES = ("keras", "tflite-int8", "tflite-float16")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=40, help="images timed per batch size (default: %(default)s)")
    args = parser.parse_args()
    try:
        import onnxruntime
        import tf2onnx
    except ImportError as err:
        raise SystemExit(f"this benchmark needs onnxruntime and tf2onnx ({err}); see its docstring") from None
    import numpy as np
    import tensorflow as tf

    from nucleilib.backends import load_predict_fn
    from nucleilib.data import data_root, sample_folders
    from nucleilib.io import read_image
    from nucleilib.machine import machine_info
    from nucleilib.models import load_model_folder, model_folder
    from nucleilib.segmenter import Segmenter

    model, _ = load_model_folder(model_folder("unet-dsb2018"))
    signature = (tf.TensorSpec((None, None, None, 3), tf.float32, name="image"),)
    start = time.perf_counter()
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    converted_s = time.perf_counter() - start
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    engines = {name: load_predict_fn("unet-dsb2018", name)[0] for name in ENGINES}
    engines[f"onnxruntime {onnxruntime.__version__} float32"] = lambda x: session.run(None, {input_name: x})[0]

    paths = []
    for sample in sample_folders(data_root()):
        image = next((sample / "images").glob("*.png"))
        if read_image(image).shape[:2] == (256, 256):
            paths.append(image)
        if len(paths) == max(args.batches):
            break
    prepare = Segmenter.from_pretrained("unet-dsb2018", diameter=None)
    inputs = [prepare._input(path) for path in paths]
    reference = [engines["keras"](x[np.newaxis]) for x in inputs]
    info = machine_info()
    print(
        f"{info['cpu']} ({', '.join(info['cpu_features']) or 'no listed features'}), {info['cores']} cores; "
        f"tf2onnx {tf2onnx.__version__} converted the model in {converted_s:.1f} s"
    )
    for name, engine in engines.items():
        difference = max(float(np.abs(engine(x[np.newaxis]) - r).max()) for x, r in zip(inputs, reference))
        for size in args.batches:
            batch = np.stack(inputs[:size]).astype(np.float32)
            engine(batch), engine(batch)
            times = []
            for _ in range(max(5, args.repeats // size)):
                start = time.perf_counter()
                engine(batch)
                times.append(time.perf_counter() - start)
            print(
                f"{name:30s} batch {size:2d}: {np.median(times) / size * 1000:6.1f} ms per image "
                f"(largest |p - keras| {difference:.4f})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
