"""The shipped network as a bioimage.io model package, for deepImageJ, ilastik and QuPath.

>>> from nucleilib.bioimageio import export_package          # doctest: +SKIP
>>> export_package("unet-dsb2018", "unet-dsb2018.bioimageio.zip")  # doctest: +SKIP

A package is one zip file (the layout bioimage.io's tools read) holding ``rdf.yaml``, the
weights as a TensorFlow SavedModel bundle and as Keras HDF5 (both formats the spec accepts
for TensorFlow), a test input with the output this network gives for it, a cover image and
``README.md``, which says what the package does and what it leaves to the caller.

What the spec can express travels in ``rdf.yaml``: the percentile normalisation
(``scale_range`` over the pixels and channels of each image, then ``clip`` to [0, 1]).
What it cannot is left to the caller and documented: inverting bright-background images,
the haematoxylin channel of stained tissue, resizing so nuclei are the reference diameter
across, grey images as three equal channels, and the instance separation of the two output
channels into labels. ``nuclei predict`` does all of these; a bioimage.io consumer gets the
network's two probability maps.

No bioimage.io package is needed to write a package; ``bioimageio.spec``, when installed,
validates it (:func:`validate_package`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NucleiError

#: The bioimage.io model format version the package is written in.
FORMAT_VERSION = "0.5.4"
#: Tensor ids: the Keras model's input and output layer names, which the SavedModel's
#: serving signature uses as keys (consumers look the tensors up by these ids).
INPUT_ID = "image"
OUTPUT_ID = "probabilities"
#: Spatial sizes the network accepts: multiples of 16 (four 2x poolings), at least 16.
SIZE_STEP = 16
#: The package's files.
FILES = {
    "savedmodel": "weights-tf-saved-model.zip",
    "keras": "weights-keras.h5",
    "test_input": "test-input.npy",
    "test_output": "test-output.npy",
    "cover": "cover.png",
    "sample_input": "sample-input.png",
    "sample_output": "sample-output.tif",
    "documentation": "README.md",
}


class PackageError(NucleiError, ValueError):
    """The package could not be written or does not pass validation."""


@dataclass(frozen=True)
class Package:
    """What :func:`export_package` wrote."""

    path: Path
    bytes: int
    files: tuple[str, ...]


def synthetic_sample(size: int = 256, seed: int = 0) -> np.ndarray:
    """A fluorescence-like test image: bright round nuclei on a dark, noisy background.

    Deterministic, so a package's test tensors are the same on every export.

    Examples
    --------
    >>> image = synthetic_sample(64)
    >>> image.shape, image.dtype
    ((64, 64, 3), dtype('uint8'))
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size), np.float32)
    for _ in range(max(1, size * size // 1500)):
        cy, cx = rng.uniform(12, size - 12, 2)
        radius = rng.uniform(6, 11)
        brightness = rng.uniform(0.5, 1.0)
        image += brightness / (1 + np.exp(((yy - cy) ** 2 + (xx - cx) ** 2) ** 0.5 - radius))
    image = np.clip(image, 0, 1) * 200 + rng.normal(10, 4, image.shape)
    grey = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def _crop_to_step(image: np.ndarray) -> np.ndarray:
    height, width = (side - side % SIZE_STEP for side in image.shape[:2])
    if height < SIZE_STEP or width < SIZE_STEP:
        raise PackageError(f"the sample image is {image.shape[:2]}; it needs at least {SIZE_STEP} x {SIZE_STEP} pixels")
    return image[:height, :width]


def _test_tensors(model: Any, config: Any, sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The test input as the consumer receives it (RGB float32, before the rdf's
    preprocessing) and the network's output on it after that preprocessing."""
    from .io import as_rgb8
    from .preprocess import is_bright_background, is_colour, percentile_normalise

    rgb = _crop_to_step(as_rgb8(sample))
    if config.invert_bright and is_bright_background(rgb):
        raise PackageError(
            "the sample image has a bright background, which the network needs inverted and the "
            "bioimage.io preprocessing cannot do: give a fluorescence image (dark background) as the sample"
        )
    if is_colour(rgb) and config.colour_input != "rgb" and is_bright_background(rgb):
        raise PackageError("the sample image is a stained image; give a fluorescence image as the sample")
    raw = rgb.astype(np.float32)[None]
    # scale_range with eps as the spec defines it, then clip: exactly what a consumer computes.
    low, high = np.percentile(raw, [1.0, 99.8])
    network_input = np.clip((raw - low) / (high - low + 1e-6), 0.0, 1.0).astype(np.float32)
    ours = percentile_normalise(raw[0])
    if not np.allclose(network_input[0], ours, atol=1e-4):
        raise PackageError("the rdf's preprocessing does not reproduce nucleilib's on the sample image")
    output = np.asarray(model(network_input, training=False), np.float32)
    return raw, output


def _cover(sample_rgb: np.ndarray, probabilities: np.ndarray, config: Any, path: Path) -> None:
    from .io import write_image
    from .plotting import outline_overlay
    from .segmenter import labels_from_probabilities

    labels = labels_from_probabilities(probabilities, config)
    overlay = outline_overlay(sample_rgb, labels)
    foreground = (np.clip(probabilities[..., 0], 0, 1) * 255).astype(np.uint8)
    side_by_side = np.concatenate([overlay, np.repeat(foreground[..., None], 3, axis=-1)], axis=1)
    write_image(side_by_side, path)


def _documentation(config: Any, card: dict[str, Any], tensorflow_version: str) -> str:
    estimate = card.get("grouped_estimate", {}).get("mean_over_groups", {})
    inference = card.get("inference", {})
    test = inference.get("test_metrics_by_setting", {})
    rows = "\n".join(
        f"| {setting} | {values.get('DSB', float('nan')):.3f} | {values.get('IoU', float('nan')):.3f} |"
        for setting, values in test.items()
    )
    diameter = config.diameter
    invert = (
        "the network saw nuclei bright on a dark background; invert such images (`1 - x` after the normalisation)."
        if config.invert_bright
        else "given as they are (this model does not invert them)."
    )
    stains = {
        "rgb": "given as RGB, like any other colour image.",
        "grey": "give the channel mean, normalised and inverted as above and repeated to three channels.",
        "hematoxylin": "give the haematoxylin optical density of a colour deconvolution (scikit-image's "
        "`rgb2hed`, channel 0), normalised as above and repeated to three channels, without inverting it.",
    }
    stain = f"this model's colour input is `{config.colour_input}`: " + stains[config.colour_input]
    return f"""# {card.get("name", "unet-dsb2018")}: nuclei in microscopy images

A residual U-Net ({card.get("parameters", "?"):,} parameters) trained on the 2018 Data Science Bowl
training set ({card.get("data", "DSB2018 stage1_train")}) by the `nuclei` project. It predicts two
probability maps per pixel: **foreground** (inside a nucleus) and **border** (the part of a nucleus
within two pixels of another nucleus), from which touching nuclei are separated.

## Input

`{INPUT_ID}`: batch, y, x, channel (3 channels, RGB); y and x multiples of {SIZE_STEP}. The package's
preprocessing, which bioimage.io tools apply, scales each image so that its 1st and 99.8th
percentiles (over all pixels and channels together) become 0 and 1, then clips to [0, 1].

## Output

`{OUTPUT_ID}`: batch, y, x, channel (foreground, border), values in [0, 1], the input's size.

## What the package leaves to the caller

The `nuclei` tool does each of these before or after the network; a bioimage.io consumer
runs the network alone and must do them itself to get the same results:

1. **Grey images** as three equal channels.
2. **Bright-background images** (bright field, stained tissue): {invert}
3. **Stained tissue** (a colour image on a bright background): {stain}
4. **Scale**: {f"the network works best on nuclei about {diameter:.0f} pixels across; resize images so that their nuclei are that size, and the labels back afterwards." if diameter else "images are segmented at their own scale."}
5. **Large images**: predict in overlapping tiles (the tool uses 512-pixel tiles with 32 pixels of
   overlap on each side).
6. **Instance separation** (`{config.separation}`, `nucleilib.inference.separate`): with `borders`, the
   4-connected components of (foreground > {config.threshold}) and (border < {config.border_threshold}) are markers,
   grown back over the foreground by a watershed of the border map; objects under {config.min_size} pixels
   are dropped.

`nuclei predict IMAGES -o OUT` does all of it and writes label images and per-nucleus tables.

## Accuracy

On the test split of the random train/test split ({card.get("test_images", "?")} images the network never saw):

| setting | DSB score | IoU |
|---|---|---|
{rows}

On imaging conditions it never saw (each imaging group scored by a same-budget network trained
without it, {estimate.get("images", "?")} images), the mean DSB score over groups is
{estimate.get("dsb_score", float("nan")):.3f}: expect less on images unlike the training set,
and very little on bright-field images.

## Validation

The test tensors (`test-input.npy`, `test-output.npy`) are this network's output on the sample
image after the preprocessing declared in `rdf.yaml`, computed as the bioimage.io spec defines
it. The `nuclei` tests check the package with `bioimageio.spec` (format and files) and run
`bioimageio.core`'s preprocessing with both weight formats loaded by TensorFlow
{tensorflow_version}, reproducing the test output. (`bioimageio.core` 0.11's own TensorFlow and
Keras adapters need Keras 3, which TensorFlow 2.14 does not have.)

## Provenance

Trained {card.get("date", "?")} at commit {card.get("commit", "?")}, profile {card.get("profile", "?")!r};
the full model card (`card.json` of the `nuclei` package) has every figure above with the
training settings. Data: CC0. Weights: MIT, as the project.
"""


def _rdf(card: dict[str, Any], config: Any, tensorflow_version: str) -> dict[str, Any]:
    return {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": "nuclei U-Net DSB2018",
        "description": "Nucleus foreground and touching-border probabilities for fluorescence, bright-field and "
        "stained-tissue microscopy images (residual U-Net trained on DSB2018).",
        "version": "1.0.0",
        "authors": [{"name": "The nuclei project"}],
        "cite": [
            {
                "text": "Caicedo et al., Nucleus segmentation across imaging experiments: the 2018 Data Science Bowl. "
                "Nature Methods 16, 1247-1253 (2019)",
                "doi": "10.1038/s41592-019-0612-7",
            }
        ],
        "license": "MIT",
        "tags": ["nuclei", "segmentation", "unet", "fluorescence-light-microscopy", "2d", "tensorflow", "dsb2018"],
        "documentation": FILES["documentation"],
        "covers": [FILES["cover"]],
        "inputs": [
            {
                "id": INPUT_ID,
                "description": "RGB image (grey images as three equal channels); see README.md",
                "axes": [
                    {"type": "batch"},
                    {"type": "space", "id": "y", "size": {"min": SIZE_STEP, "step": SIZE_STEP}},
                    {"type": "space", "id": "x", "size": {"min": SIZE_STEP, "step": SIZE_STEP}},
                    {"type": "channel", "channel_names": ["r", "g", "b"]},
                ],
                "test_tensor": {"source": FILES["test_input"]},
                "sample_tensor": {"source": FILES["sample_input"]},
                "data": {"type": "float32"},
                "preprocessing": [
                    {
                        "id": "scale_range",
                        "kwargs": {"axes": ["y", "x", "channel"], "min_percentile": 1.0, "max_percentile": 99.8},
                    },
                    {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}},
                ],
            }
        ],
        "outputs": [
            {
                "id": OUTPUT_ID,
                "description": "foreground and touching-border probabilities; separation into nuclei: README.md",
                "axes": [
                    {"type": "batch"},
                    {"type": "space", "id": "y", "size": {"tensor_id": INPUT_ID, "axis_id": "y"}},
                    {"type": "space", "id": "x", "size": {"tensor_id": INPUT_ID, "axis_id": "x"}},
                    {"type": "channel", "channel_names": ["foreground", "border"]},
                ],
                "test_tensor": {"source": FILES["test_output"]},
                "sample_tensor": {"source": FILES["sample_output"]},
                "data": {"type": "float32", "range": [0.0, 1.0]},
            }
        ],
        "weights": {
            "tensorflow_saved_model_bundle": {
                "source": FILES["savedmodel"],
                "tensorflow_version": tensorflow_version,
            },
            "keras_hdf5": {
                "source": FILES["keras"],
                "tensorflow_version": tensorflow_version,
                "parent": "tensorflow_saved_model_bundle",
            },
        },
        "config": {
            "nuclei": {
                "model_config": json.loads(json.dumps(config.__dict__, default=list)),
                "grouped_estimate": card.get("grouped_estimate", {}).get("mean_over_groups", {}),
            }
        },
    }


def _zip_folder(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())


def export_package(
    model: str | os.PathLike[str] = "unet-dsb2018",
    target: str | os.PathLike[str] = "unet-dsb2018.bioimageio.zip",
    *,
    sample: np.ndarray | None = None,
    overwrite: bool = False,
) -> Package:
    """Write a shipped model (or a model folder) as a bioimage.io model package (one zip file).

    Parameters
    ----------
    model : str or path-like
        Shipped model name or model folder.
    target : path-like
        The zip file to write (``.zip``).
    sample : ndarray, optional
        A fluorescence image (dark background) for the test tensors and the cover; by default
        :func:`synthetic_sample`. Cropped to a multiple of 16 pixels.
    overwrite : bool
        Replace an existing ``target``.

    Raises
    ------
    PackageError
        For a target that exists (unless ``overwrite``) or is not a ``.zip``, or a sample
        image the package's preprocessing cannot take.
    """
    import tensorflow as tf
    import tifffile
    import yaml

    from .io import write_image
    from .models import load_model_folder, model_folder

    target = Path(target)
    if target.suffix != ".zip":
        raise PackageError(f"{target}: a bioimage.io package is a .zip file")
    if target.exists() and not overwrite:
        raise PackageError(f"{target}: exists; pass --overwrite to replace it")
    if not target.parent.is_dir():
        raise PackageError(f"{target.parent}: no such folder")
    folder = model_folder(model)
    network, config = load_model_folder(folder)
    card_path = folder / "card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {"name": folder.name}
    image = synthetic_sample() if sample is None else np.asarray(sample)
    raw, output = _test_tensors(network, config, image)
    with tempfile.TemporaryDirectory(prefix="nuclei-bioimageio-") as scratch:
        staging = Path(scratch) / "package"
        staging.mkdir()
        saved = Path(scratch) / "savedmodel"
        tf.saved_model.save(network, str(saved))
        _zip_folder(saved, staging / FILES["savedmodel"])
        network.save(staging / FILES["keras"], save_format="h5", include_optimizer=False)
        np.save(staging / FILES["test_input"], raw)
        np.save(staging / FILES["test_output"], output)
        _cover(raw[0].astype(np.uint8), output[0], config, staging / FILES["cover"])
        write_image(raw[0].astype(np.uint8), staging / FILES["sample_input"])
        tifffile.imwrite(staging / FILES["sample_output"], output[0])
        (staging / FILES["documentation"]).write_text(_documentation(config, card, tf.__version__))
        rdf = _rdf(card, config, tf.__version__)
        (staging / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True))
        partial = target.with_name(target.name + ".partial")
        _zip_folder(staging, partial)
        os.replace(partial, target)
        files = tuple(sorted(p.name for p in staging.iterdir()))
    return Package(target, target.stat().st_size, files)


def validate_package(path: str | os.PathLike[str]) -> Any:
    """Validate a package with ``bioimageio.spec`` (format, files and their checksums).

    Returns the validation summary (``.status`` is ``"valid-format"`` or ``"passed"`` when
    it passes).

    Raises
    ------
    PackageError
        When ``bioimageio.spec`` is not installed.
    """
    try:
        from bioimageio.spec import load_description
    except ImportError:
        raise PackageError("bioimageio.spec is not installed (pip install -e '.[bioimageio]')") from None
    description = load_description(str(path), perform_io_checks=True)
    return description.validation_summary


def validation_problems(summary: Any) -> list[str]:
    """The failed checks of a validation summary, one line each (empty when it passed)."""
    if summary.status in ("valid-format", "passed"):
        return []
    lines = []
    for detail in summary.details:
        for error in getattr(detail, "errors", []):
            lines.append(f"{detail.name}: {'.'.join(map(str, error.loc))}: {error.msg}")
    return lines or [f"status {summary.status}"]


def unpack(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """Extract a package into ``folder`` (replacing it) and return the folder."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    return folder
