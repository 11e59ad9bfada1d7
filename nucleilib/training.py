"""Training a segmentation network on DSB samples, with a cache of trained models.

A trained model is stored under a folder named by a digest of its training
configuration and the ids of its training and validation images, so rebuilding
the book reuses it instead of training again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import Sample
from .machine import machine_info
from .models import ModelConfig, _without_later_defaults, build_model, compile_model, load_model_folder, save_model

#: How :class:`TrainConfig` may balance the draw of training images.
BALANCINGS = ("none", "modality")
#: TrainConfig fields added after models were first trained and cached, with their defaults
#: (left out of the digest at these values, so cached models stay found).
_LATER_TRAIN_FIELDS: dict[str, Any] = {"scale_jitter": 1.0, "colour": False, "balance": "none"}


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults follow the seed paper where it states them.

    Attributes
    ----------
    model : ModelConfig
        Architecture, preprocessing and post-processing of the network.
    crop : int
        Side of the random training crops (taken from full-resolution images).
    batch_size, epochs, steps_per_epoch : int
        One epoch is ``steps_per_epoch`` batches of random crops.
    learning_rate : float
        Adam's initial learning rate (the paper: 1e-3).
    patience : int
        Early stopping after this many epochs without a better ``monitor``.
    monitor : str
        Validation quantity that picks the kept epoch and stops training:
        ``"val_loss"`` (smooth, the default) or ``"val_iou"`` (the target metric,
        but noisy on a validation split of a few images).
    reduce_lr_patience, reduce_lr_factor : int, float
        Learning-rate reduction on a validation-loss plateau.
    border_width : int
        Width of the touching-border target in pixels.
    border_weight : float
        Weight of the border channel in the loss.
    max_minutes : float or None
        Stop after this wall time (the best weights are kept).
    seed : int
        Seeds Python, NumPy and TensorFlow.
    mixed_precision : str
        ``"auto"`` (float16 on a GPU, float32 on the CPU), ``"off"``,
        ``"float16"`` or ``"bfloat16"``.
    scale_jitter : float
        Random zoom of the training crops, log-uniform in [1/j, j] (1: none). With
        ``model.diameter`` set, every image is first rescaled so that its nuclei (their
        median equivalent diameter in the annotation) are ``model.diameter`` across.
    colour : bool
        Colour augmentation (channel shuffle, stain-like tint, hue, saturation, grey,
        inversion; see :func:`nucleilib.pipeline.augment_pair`).
    balance : str
        ``"none"``: images are drawn by the square root of their area. ``"modality"``:
        each imaging modality (:func:`nucleilib.preprocess.classify_modality`) is drawn
        in proportion to the square root of its share, so that a few bright-field or
        tissue images are not drowned by hundreds of fluorescence ones.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    crop: int = 128
    batch_size: int = 8
    epochs: int = 100
    steps_per_epoch: int = 100
    learning_rate: float = 1e-3
    patience: int = 10
    monitor: str = "val_loss"
    reduce_lr_patience: int = 4
    reduce_lr_factor: float = 0.5
    border_width: int = 2
    border_weight: float = 1.0
    val_tile: int = 256
    max_minutes: float | None = None
    seed: int = 42
    mixed_precision: str = "auto"
    scale_jitter: float = 1.0
    colour: bool = False
    balance: str = "none"

    def as_dict(self) -> dict[str, Any]:
        values = _without_later_defaults(asdict(self), _LATER_TRAIN_FIELDS)
        values["model"] = json.loads(self.model.to_json())
        return values


@dataclass
class TrainResult:
    """A trained (or reloaded) model with its history."""

    model: Any
    config: TrainConfig
    history: pd.DataFrame
    folder: Path
    reused: bool
    seconds: float


def training_digest(config: TrainConfig, train_ids: Sequence[str], val_ids: Sequence[str]) -> str:
    """Digest of a training configuration and its data; names the cached model."""
    payload = json.dumps(
        {"config": config.as_dict(), "train": sorted(train_ids), "val": sorted(val_ids)}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def set_seeds(seed: int) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)


def _strategy() -> Any:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def precision_policy(mode: str) -> str:
    """The Keras mixed-precision policy name for ``mode`` (auto, off, float16, bfloat16)."""
    import tensorflow as tf

    if mode == "auto":
        mode = "float16" if tf.config.list_physical_devices("GPU") else "off"
    policy = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}.get(mode)
    if policy is None:
        raise ValueError(f"unknown mixed_precision {mode!r}; use auto, off, float16 or bfloat16")
    return policy


@contextlib.contextmanager
def precision(mode: str) -> Iterator[str]:
    """Set TensorFlow's global mixed-precision policy for the ``with`` block only.

    The previous policy comes back however the block ends (a failed or interrupted
    training included), so no later model is built in the wrong precision.
    """
    import tensorflow as tf

    policy = precision_policy(mode)
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


class _TimeLimit:
    """Keras callback that stops training after a wall-time budget."""

    def __new__(cls, minutes: float) -> Any:
        import tensorflow as tf

        class TimeLimit(tf.keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.deadline = time.monotonic() + minutes * 60
                self.stopped_by_time = False

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                if time.monotonic() > self.deadline:
                    self.stopped_by_time = True
                    self.model.stop_training = True

        return TimeLimit()


class _EpochProgress:
    """Keras callback: one progress line per epoch (:mod:`nucleilib.progress`)."""

    def __new__(cls, name: str, epochs: int, max_minutes: float | None) -> Any:
        import tensorflow as tf

        from .progress import Countdown

        limit = f" (time limit {max_minutes:g} min)" if max_minutes else ""

        class EpochProgress(tf.keras.callbacks.Callback):
            def on_train_begin(self, logs: Any = None) -> None:
                self.countdown = Countdown(f"training {name}{limit}", epochs, unit="epochs")

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                logs = logs or {}
                losses = ", ".join(f"{k} {logs[k]:.4f}" for k in ("loss", "val_loss") if k in logs)
                self.countdown.step(losses)

        return EpochProgress()


def prepare_arrays(samples: Sequence[Sample], config: TrainConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Preprocessed images and training targets for a list of samples.

    With ``config.model.diameter`` set, each image and its labels are first rescaled so
    that the median equivalent diameter of its annotated nuclei is that many pixels.
    """
    from .preprocess import make_targets, preprocess
    from .scale import rescale_image, resize_labels, scale_factor, scaled_shape, typical_diameter

    model = config.model
    images, targets = [], []
    for s in samples:
        image = preprocess(
            s.image,
            sigma=model.sigma,
            invert_bright=model.invert_bright,
            grey=model.in_channels == 1,
            colour_input=model.colour_input,
        )
        labels = s.labels
        if model.diameter is not None:
            factor = scale_factor(typical_diameter(labels), model.diameter)
            image = rescale_image(image, factor)
            labels = resize_labels(labels, scaled_shape(labels.shape, factor))
        images.append(image)
        targets.append(make_targets(labels, border_width=config.border_width)[..., : len(model.outputs)])
    return images, targets


def balance_weights(samples: Sequence[Sample], balance: str) -> np.ndarray | None:
    """Per-image draw factors of ``balance`` (see :class:`TrainConfig`); None for ``"none"``.

    Examples
    --------
    >>> from nucleilib.data import Sample
    >>> grey, colour = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)
    >>> colour[..., 0] = 200
    >>> samples = [Sample(str(k), grey, np.zeros((8, 8), np.uint16)) for k in range(4)]
    >>> samples.append(Sample("t", colour, np.zeros((8, 8), np.uint16)))
    >>> balance_weights(samples, "modality").round(3).tolist()  # modality shares 4:1 become 2:1
    [0.5, 0.5, 0.5, 0.5, 1.0]
    """
    from .preprocess import classify_modality

    if balance not in BALANCINGS:
        raise ValueError(f"unknown balance {balance!r}; use one of {', '.join(BALANCINGS)}")
    if balance == "none":
        return None
    modality = pd.Series([classify_modality(s.image) for s in samples])
    mass = pd.Series([float(np.sqrt(s.labels.size)) for s in samples]).groupby(modality).transform("sum")
    weights = mass**-0.5
    return (weights / weights.max()).to_numpy()


def train(
    config: TrainConfig,
    train_samples: Sequence[Sample],
    val_samples: Sequence[Sample],
    cache_root: str | os.PathLike[str],
    *,
    name: str = "unet",
    retrain: bool = False,
    verbose: int = 2,
) -> TrainResult:
    """Train a network, or reload the one trained before with the same settings.

    The model is saved to ``<cache_root>/<name>-<digest>/`` with its weights,
    configuration, training configuration and history (``history.csv``). The
    digest covers the configuration and the image ids, so a model cached under
    another name with the same digest is reused too.

    Parameters
    ----------
    config : TrainConfig
    train_samples, val_samples : sequence of Sample
    cache_root : path-like
        Folder of trained models (one sub-folder per configuration).
    name : str
        Prefix of the model folder.
    retrain : bool
        Train even when a cached model exists.
    verbose : int
        Keras verbosity (2: one line per epoch).
    """
    if config.monitor not in ("val_loss", "val_iou"):
        raise ValueError(f"monitor must be val_loss or val_iou, got {config.monitor!r}")
    if config.balance not in BALANCINGS:
        raise ValueError(f"unknown balance {config.balance!r}; use one of {', '.join(BALANCINGS)}")
    mode = "min" if config.monitor == "val_loss" else "max"
    digest = training_digest(config, [s.image_id for s in train_samples], [s.image_id for s in val_samples])
    folder = Path(cache_root) / f"{name}-{digest}"
    if not retrain and not (folder / "train-config.json").is_file():
        # The digest alone identifies a training: reuse one cached under another name.
        same = sorted(p for p in Path(cache_root).glob(f"*-{digest}") if (p / "train-config.json").is_file())
        folder = same[0] if same else folder
    done = folder / "train-config.json"
    if done.is_file() and not retrain:
        model, _ = load_model_folder(folder)
        history = pd.read_csv(folder / "history.csv")
        info = json.loads(done.read_text())
        return TrainResult(model, config, history, folder, True, float(info.get("seconds", 0.0)))
    set_seeds(config.seed)
    with precision(config.mixed_precision) as policy:
        fit, seconds, time_limit, trained = _fit(config, train_samples, val_samples, folder, mode, verbose)
    history = pd.DataFrame(fit.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    # Re-create in float32 so the saved and shipped model does not depend on the policy.
    final = build_model(config.model)
    final.set_weights(trained.get_weights())
    save_model(final, config.model, folder, float16=False)
    history.to_csv(folder / "history.csv", index=False)
    (folder / "best.weights.h5").unlink(missing_ok=True)
    done.write_text(
        json.dumps(
            {
                "config": config.as_dict(),
                "seconds": round(seconds, 1),
                "epochs_run": len(history),
                "best_epoch": int(
                    history[config.monitor].idxmin() if mode == "min" else history[config.monitor].idxmax()
                )
                + 1,
                "monitor": config.monitor,
                "stopped_by_time": bool(getattr(time_limit, "stopped_by_time", False)),
                "precision_policy": policy,
                "train_images": len(train_samples),
                "train_crops_per_s": round(len(history) * config.steps_per_epoch * config.batch_size / seconds, 1),
                # Weights trained with one seed are bit-identical on one machine, not across CPUs.
                "machine": machine_info(),
                "tensorflow": version("tensorflow"),
                "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            },
            indent=2,
        )
        + "\n"
    )
    return TrainResult(final, config, history, folder, False, seconds)


def _fit(
    config: TrainConfig,
    train_samples: Sequence[Sample],
    val_samples: Sequence[Sample],
    folder: Path,
    mode: str,
    verbose: int,
) -> tuple[Any, float, Any, Any]:
    """Build, compile and fit one network under the current precision policy."""
    import tensorflow as tf

    from .pipeline import training_dataset, validation_tiles

    images, targets = prepare_arrays(train_samples, config)
    val_images, val_targets = prepare_arrays(val_samples, config)
    x_val, y_val = validation_tiles(val_images, val_targets, tile=config.val_tile)
    dataset = training_dataset(
        images,
        targets,
        crop=config.crop,
        batch_size=config.batch_size,
        seed=config.seed,
        scale_jitter=config.scale_jitter,
        colour=config.colour,
        weights=balance_weights(train_samples, config.balance),
    )
    with _strategy().scope():
        model = compile_model(
            build_model(config.model), learning_rate=config.learning_rate, border_weight=config.border_weight
        )
    folder.mkdir(parents=True, exist_ok=True)
    best = folder / "best.weights.h5"
    callbacks = [
        tf.keras.callbacks.ModelCheckpoint(
            str(best), monitor=config.monitor, mode=mode, save_best_only=True, save_weights_only=True
        ),
        tf.keras.callbacks.EarlyStopping(monitor=config.monitor, mode=mode, patience=config.patience),
        tf.keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=config.reduce_lr_factor, patience=config.reduce_lr_patience, min_lr=1e-5
        ),
    ]
    callbacks.append(_EpochProgress(folder.name, config.epochs, config.max_minutes))
    time_limit = _TimeLimit(config.max_minutes) if config.max_minutes else None
    if time_limit is not None:
        callbacks.append(time_limit)
    start = time.perf_counter()
    fit = model.fit(
        dataset,
        steps_per_epoch=config.steps_per_epoch,
        epochs=config.epochs,
        validation_data=(x_val, y_val),
        validation_batch_size=config.batch_size,
        callbacks=callbacks,
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    model.load_weights(str(best))
    return fit, seconds, time_limit, model


def with_model(config: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``config`` with fields of its :class:`ModelConfig` changed."""
    return replace(config, model=replace(config.model, **changes))
