"""The classical baseline and the evaluation helpers of nucleilib.segmentation."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from nucleilib.data import Sample
from nucleilib.segmentation import classical_labels, evaluate_classical


def _two_nuclei(bright_background: bool = False) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((80, 96), np.uint16)
    labels[disk((25, 25), 10)] = 1
    labels[disk((55, 70), 12)] = 2
    image = np.where(labels > 0, 190, 25).astype(np.uint8)
    if bright_background:
        image = 255 - image
    noise = np.random.default_rng(0).integers(0, 12, image.shape, dtype=np.uint8)
    return np.stack([image + noise] * 3, axis=-1), labels


@pytest.mark.parametrize("bright_background", [False, True])
def test_classical_finds_separate_nuclei_on_either_background(bright_background: bool) -> None:
    image, truth = _two_nuclei(bright_background)
    labels = classical_labels(image)
    assert labels.max() == 2
    overlap = (labels > 0) & (truth > 0)
    assert overlap.sum() / (truth > 0).sum() > 0.9


def test_classical_splits_two_touching_nuclei() -> None:
    labels = np.zeros((60, 90), np.uint16)
    labels[disk((30, 30), 16)] = 1
    labels[disk((30, 58), 16)] = 2
    image = np.where(labels > 0, 200, 20).astype(np.uint8)
    assert classical_labels(image).max() == 2


def test_classical_on_a_blank_image_finds_nothing() -> None:
    assert classical_labels(np.full((32, 32, 3), 7, np.uint8)).max() == 0


def test_evaluate_classical_scores_a_clean_image_highly() -> None:
    image, truth = _two_nuclei()
    frame = evaluate_classical([Sample("a", image, truth)])
    assert list(frame["image_id"]) == ["a"] and list(frame["method"]) == ["classical"]
    assert frame["dsb_score"].iloc[0] > 0.5 and frame["iou"].iloc[0] > 0.9
    assert frame["predict_s"].iloc[0] > 0
