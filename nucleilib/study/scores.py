"""Per-image scores of a trained network, kept in the run so that re-executing a chapter does
not segment the test images again.

Scoring a network means segmenting every test image with it, which is most of what re-executing
the U-Net and comparison chapters costs once their models are trained. The scores only change
when the network's weights, its configuration, the segmenter's settings, the images or the
scoring code change, so they are cached like the trained models: one CSV per scoring under
``<artefacts>/scores/``, named by a digest of all of those (:func:`scores_key`; the images by
their pixels and annotations, not only their ids; the scoring code by :data:`SCORES_VERSION`).
A chapter re-executed from the committed run reads them; ``nuclei study --rescore`` (or
``NUCLEI_RESCORE=1``) segments again and rewrites them, and ``nuclei study --verify`` always
does, then compares what it wrote with the committed files.

Each row also holds the image's pixel counts of the thresholded foreground probability against
the annotation (``fg_tp``, ``fg_fp``, ``fg_fn``, ``fg_tn``), from which pooled (*micro*) pixel
metrics are summed (:func:`micro_from_counts`) without the probability maps. The maps
themselves, which a chapter needs for a few figures, are predicted again on demand
(:class:`LazyProbabilities`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import evaluation

#: The folder of cached scores inside a run's artefact folder.
SCORES_FOLDER = "scores"
#: Raise when scoring changes what it writes for the same network and images.
SCORES_VERSION = 1
#: Set to 1 to score again even where the scores are cached.
RESCORE_ENV = "NUCLEI_RESCORE"
#: Pixel-count columns of a cached scoring (foreground probability above the threshold vs annotation).
COUNT_COLUMNS = ("fg_tp", "fg_fp", "fg_fn", "fg_tn")


def rescore_requested() -> bool:
    """Whether ``NUCLEI_RESCORE`` asks to score again (``1``, ``true`` or ``yes``)."""
    return os.environ.get(RESCORE_ENV, "").strip().lower() in {"1", "true", "yes"}


def _add_array(digest: Any, array: Any) -> None:
    """Feed an array's dtype, shape and bytes to a hashlib digest."""
    array = np.ascontiguousarray(array)
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())


def weights_digest(model: Any) -> str:
    """SHA-256 of a Keras model's weights (every array's dtype, shape and bytes, in order).

    Examples
    --------
    >>> class Fake:
    ...     def __init__(self, value): self.value = value
    ...     def get_weights(self): return [np.full((2, 2), self.value, np.float32)]
    >>> weights_digest(Fake(1.0)) == weights_digest(Fake(1.0)), weights_digest(Fake(1.0)) == weights_digest(Fake(2.0))
    (True, False)
    """
    digest = hashlib.sha256()
    for array in model.get_weights():
        _add_array(digest, array)
    return digest.hexdigest()


def samples_digest(samples: Sequence[Any]) -> str:
    """SHA-256 of annotated images: each sample's id, image and labels (dtype, shape and bytes),
    in id order, so that the same ids with other pixels or annotations never match.

    Examples
    --------
    >>> from nucleilib.data import Sample
    >>> a = Sample("a", np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.int32))
    >>> b = Sample("a", np.zeros((2, 2, 3), np.uint8), np.ones((2, 2), np.int32))
    >>> samples_digest([a]) == samples_digest([a]), samples_digest([a]) == samples_digest([b])
    (True, False)
    """
    digest = hashlib.sha256()
    for sample in sorted(samples, key=lambda s: s.image_id):
        digest.update(sample.image_id.encode())
        _add_array(digest, sample.image)
        _add_array(digest, sample.labels)
    return digest.hexdigest()


def scores_key(weights: str, config: Any, images: str, methods: Sequence[str], settings: Mapping[str, Any]) -> str:
    """The 16-hex-digit digest naming one scoring: weights digest, model configuration, images
    digest (:func:`samples_digest`), separation methods, segmenter settings and :data:`SCORES_VERSION`.

    Examples
    --------
    >>> a = scores_key("w", {"diameter": None}, "images", ["borders"], {"diameter": None})
    >>> a == scores_key("w", {"diameter": None}, "images", ["borders"], {"diameter": None}), len(a)
    (True, 16)
    >>> a == scores_key("w", {"diameter": 24.0}, "images", ["borders"], {"diameter": None})
    False
    """
    config = _plain(config)
    key = json.dumps(
        {
            "version": SCORES_VERSION,
            "weights": weights,
            "config": config,
            "images": images,
            "methods": list(methods),
            "settings": dict(settings),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def foreground_counts(probabilities: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """``(tp, fp, fn, tn)`` of ``probabilities[..., 0] > threshold`` against ``truth > 0``.

    Examples
    --------
    >>> probs = np.array([[[0.9], [0.2]], [[0.7], [0.1]]])
    >>> foreground_counts(probs, np.array([[1, 1], [0, 0]]), 0.5)
    (1, 1, 1, 1)
    """
    return evaluation.pixel_counts(np.asarray(probabilities)[..., 0] > threshold, np.asarray(truth) > 0)


def micro_from_counts(metrics: pd.DataFrame) -> evaluation.PixelMetrics:
    """Pixel metrics pooled over the images of a scoring, from its :data:`COUNT_COLUMNS`
    (one count per image, whatever the number of separation methods scored).

    Examples
    --------
    >>> frame = pd.DataFrame({"image_id": ["a", "a", "b"], "method": ["x", "y", "x"],
    ...                       "fg_tp": [1, 1, 3], "fg_fp": [1, 1, 0], "fg_fn": [1, 1, 0], "fg_tn": [1, 1, 0]})
    >>> micro_from_counts(frame).iou
    0.6666666666666666
    """
    missing = [c for c in COUNT_COLUMNS if c not in metrics.columns]
    if missing:
        raise ValueError(
            f"these scores have no pixel counts ({', '.join(missing)}); score them with nucleilib.study.scores"
        )
    per_image = metrics.drop_duplicates("image_id")
    return evaluation.PixelMetrics.from_counts(*(int(per_image[c].sum()) for c in COUNT_COLUMNS))


def without_counts(metrics: pd.DataFrame) -> pd.DataFrame:
    """The scores without their :data:`COUNT_COLUMNS` (for the chapters' per-image tables).

    Examples
    --------
    >>> without_counts(pd.DataFrame({"iou": [0.5], "fg_tp": [3]})).columns.tolist()
    ['iou']
    """
    return metrics.drop(columns=[c for c in COUNT_COLUMNS if c in metrics.columns])


class LazyProbabilities(Mapping):
    """``{image_id: probability maps}`` of a segmenter, predicted when first asked for.

    The maps equal those a scoring computed (the same segmenter on the same image); only the
    few images a figure shows are predicted again.
    """

    def __init__(self, make_segmenter: Any, samples: Sequence[Any], known: Mapping[str, np.ndarray] | None = None):
        self._make_segmenter = make_segmenter
        self._segmenter = None
        self._images = {s.image_id: s.image for s in samples}
        self._maps: dict[str, np.ndarray] = dict(known or {})

    def __getitem__(self, image_id: str) -> np.ndarray:
        if image_id not in self._maps:
            if image_id not in self._images:
                raise KeyError(image_id)
            if self._segmenter is None:
                self._segmenter = self._make_segmenter()
            self._maps[image_id] = self._segmenter.scaled_probabilities(self._images[image_id])[0]
        return self._maps[image_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._images)

    def __len__(self) -> int:
        return len(self._images)


def _read_scores(path: Path) -> pd.DataFrame:
    """A cached scoring, read back to the last bit of every float."""
    try:
        frame = pd.read_csv(path, float_precision="round_trip")
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ValueError(f"{path}: cached scores cannot be read ({error}); delete the file to score again") from None
    if "image_id" not in frame.columns:
        raise ValueError(f"{path}: cached scores have no image_id column; delete the file to score again")
    return frame


@dataclasses.dataclass(frozen=True)
class ScoreCache:
    """Scorings of networks on annotated images, cached as CSV files in ``folder``.

    Parameters
    ----------
    folder : path-like
        Usually ``<artefacts>/scores``.
    rescore : bool or None
        Score again even where a scoring is cached (None: :func:`rescore_requested`).
    """

    folder: Path
    rescore: bool | None = None

    def path(self, label: str, key: str) -> Path:
        """Where the scoring named ``key`` of the network ``label`` is kept."""
        return Path(self.folder) / f"{label}-{key}.csv"

    def evaluate(
        self,
        model: Any,
        config: Any,
        samples: Sequence[Any],
        *,
        methods: Sequence[str],
        label: str | None = None,
        count_pixels: bool = True,
        **segmenter_options: Any,
    ) -> tuple[pd.DataFrame, LazyProbabilities]:
        """:func:`evaluate_scores`, read from the cache when this scoring is in it."""
        samples = list(samples)
        settings = {**segmenter_options, "count_pixels": count_pixels}
        weights, images = weights_digest(model), samples_digest(samples)
        label = label or str(getattr(model, "name", "model"))
        path = self.path(label, scores_key(weights, config, images, methods, settings))
        rescore = rescore_requested() if self.rescore is None else self.rescore
        if rescore or not path.is_file():
            metrics, probabilities = evaluate_scores(
                model, config, samples, methods=methods, count_pixels=count_pixels, **segmenter_options
            )
            from ..io import write_table

            path.parent.mkdir(parents=True, exist_ok=True)
            write_table(metrics, path)
            # Read back, so that a fresh scoring and a cached one give the same frame, dtypes included.
            result = _read_scores(path), probabilities
        else:
            maker = _segmenter_maker(model, config, segmenter_options)
            result = _read_scores(path), LazyProbabilities(maker, samples)
        description = path.with_suffix(".json")
        if rescore or not description.is_file():
            # What the digest in the file name stands for, for a reader of the folder.
            facts = {"network": label, "weights_sha256": weights, "images": len(samples), "images_sha256": images}
            facts["methods"] = list(methods)
            facts |= {"settings": settings, "config": _plain(config), "scores_version": SCORES_VERSION}
            description.write_text(json.dumps(facts, indent=2, sort_keys=True, default=str) + "\n")
        return result


def evaluate_cached(
    cache: ScoreCache | None,
    model: Any,
    config: Any,
    samples: Sequence[Any],
    *,
    methods: Sequence[str],
    label: str | None = None,
    count_pixels: bool = True,
    **segmenter_options: Any,
) -> tuple[pd.DataFrame, LazyProbabilities]:
    """:meth:`ScoreCache.evaluate` with a ``cache``, :func:`evaluate_scores` (no cache, ``label`` unused) without."""
    if cache is None:
        return evaluate_scores(model, config, samples, methods=methods, count_pixels=count_pixels, **segmenter_options)
    return cache.evaluate(
        model, config, samples, methods=methods, label=label, count_pixels=count_pixels, **segmenter_options
    )


def _plain(config: Any) -> Any:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config


def _segmenter_maker(model: Any, config: Any, options: Mapping[str, Any]) -> Any:
    def make() -> Any:
        from ..segmenter import Segmenter

        return Segmenter.from_keras(model, config, **options)

    return make


def evaluate_scores(
    model: Any,
    config: Any,
    samples: Sequence[Any],
    *,
    methods: Sequence[str],
    count_pixels: bool = True,
    **segmenter_options: Any,
) -> tuple[pd.DataFrame, LazyProbabilities]:
    """:func:`nucleilib.segmenter.evaluate_model` of ``Segmenter.from_keras(model, config, **segmenter_options)``
    plus, with ``count_pixels``, each image's foreground pixel counts at ``config.threshold``
    (:data:`COUNT_COLUMNS`; they need the probabilities at the images' own scale).

    Returns the metrics and the images' probability maps as a :class:`LazyProbabilities`: with
    ``count_pixels`` it holds the maps already (they were needed for the counts), without it
    predicts a map again when asked for one (memory stays that of one image).
    """
    from ..segmenter import Segmenter, evaluate_model

    samples = list(samples)
    segmenter = Segmenter.from_keras(model, config, **segmenter_options)
    metrics, probabilities = evaluate_model(segmenter, None, samples, methods=methods, keep_probabilities=count_pixels)
    known = LazyProbabilities(lambda: segmenter, samples, known=probabilities)
    if not count_pixels:
        return metrics, known
    counts = {}
    for sample in samples:
        probs = probabilities[sample.image_id]
        if probs.shape[:2] != sample.labels.shape[:2]:
            raise ValueError(
                f"image {sample.image_id}: probabilities of shape {probs.shape[:2]} against labels of shape "
                f"{sample.labels.shape[:2]}; pixel counts need the images' own scale (diameter=None)"
            )
        counts[sample.image_id] = foreground_counts(probs, sample.labels, config.threshold)
    table = pd.DataFrame.from_dict(counts, orient="index", columns=list(COUNT_COLUMNS))
    return metrics.join(table, on="image_id"), known
