"""Blockwise segmentation of images larger than memory (nucleilib.big)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.draw import disk

from nucleilib.big import open_labels, segment_blockwise
from nucleilib.evaluation import dsb_score, iou_matrix
from nucleilib.models import ModelConfig
from nucleilib.segmenter import Segmenter

#: A stand-in network: the foreground probability is the preprocessed image.
BRIGHT = ModelConfig(outputs=("foreground",), invert_bright=False, separation="components", min_size=4)


def discs_image(shape=(300, 420), seed=0) -> tuple[np.ndarray, int]:
    """Bright discs everywhere, many of them across the borders of 96-pixel blocks, on a noisy background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(10, 30, size=shape).astype(np.uint8)
    taken = np.zeros(shape, bool)
    count = 0
    for y in range(12, shape[0] - 12, 24):
        for x in range(12, shape[1] - 12, 24):
            centre = (y + int(rng.integers(-3, 4)), x + int(rng.integers(-3, 4)))
            rr, cc = disk(centre, int(rng.integers(5, 9)), shape=shape)
            if taken[rr, cc].any():
                continue
            taken[rr, cc] = True
            image[rr, cc] = 220
            count += 1
    return image, count


def same_up_to_renumbering(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(pairs[0]) == len(np.unique(pairs[0])) == len(np.unique(pairs[1]))


def test_blockwise_equals_the_whole_image_with_nuclei_across_borders_neither_cut_nor_doubled() -> None:
    image, count = discs_image()
    segmenter = Segmenter(lambda x: x[..., :1], BRIGHT)
    whole = segmenter.segment(image)
    result = segment_blockwise(segmenter, image, block=96, margin=32)
    assert int(whole.max()) == count
    assert result.nuclei == count and int(result.labels.max()) == count and result.blocks == 20
    assert same_up_to_renumbering(whole, np.asarray(result.labels))


def test_a_block_of_background_alone_finds_no_nuclei() -> None:
    # Each block is prepared with the whole image's grey levels: alone, a block of noise
    # would be stretched to 0-1 and its noise taken for nuclei.
    image, _ = discs_image()
    image[:, 192:] = np.random.default_rng(1).integers(10, 30, size=(300, 228))
    segmenter = Segmenter(lambda x: x[..., :1], BRIGHT)
    labels = np.asarray(segment_blockwise(segmenter, image, block=96, margin=32).labels)
    assert not labels[:, 224:].any()
    assert segmenter.segment(image[:, 288:]).max() > 0  # what a block alone would have found


def test_labels_go_into_a_tiff_on_disk_block_by_block(tmp_path: Path) -> None:
    import tifffile

    image, count = discs_image()
    source = tmp_path / "mosaic.tif"
    tifffile.imwrite(source, image)  # uncompressed: read lazily through a memmap
    out = open_labels(str(tmp_path / "labels.tif"), image.shape)
    result = segment_blockwise(Segmenter(lambda x: x[..., :1], BRIGHT), tifffile.memmap(source), out, block=96)
    del out, result
    labels = tifffile.imread(tmp_path / "labels.tif")
    assert labels.shape == image.shape and labels.dtype == np.uint32 and int(labels.max()) == count


def test_bad_arguments_are_clear_errors() -> None:
    segmenter = Segmenter(lambda x: x[..., :1], BRIGHT)
    with pytest.raises(ValueError, match="block must be a positive multiple of 16"):
        segment_blockwise(segmenter, np.zeros((32, 32), np.uint8), block=100)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        segment_blockwise(segmenter, np.zeros((32, 32), np.float32), block=16)
    with pytest.raises(ValueError, match="out: expected shape"):
        segment_blockwise(segmenter, np.zeros((32, 32), np.uint8), np.zeros((8, 8), np.uint32), block=16)


@pytest.mark.slow
def test_the_shipped_model_blockwise_agrees_with_the_whole_image(real_data_root: Path) -> None:
    # Six DSB images in a 512 x 768 mosaic, blocks of 256: the stated tolerance is a DSB score of
    # the blockwise labels against the whole-image labels of at least 0.95 (at the image's own
    # scale 0.98), every nucleus matched at IoU 0.5, and the counts within 2 %.
    import pandas as pd

    from nucleilib.data import load_dataset

    manifest = pd.read_csv(Path(__file__).parents[1] / "artefacts" / "cpu" / "manifest.csv")
    chosen = manifest[(manifest["height"] == 256) & (manifest["width"] == 256)]
    ids = list(chosen[chosen["modality"] == "fluorescence"]["image_id"][:6])
    images = [s.image for s in load_dataset(real_data_root, ids=ids)]
    mosaic = np.concatenate([np.concatenate(images[:3], axis=1), np.concatenate(images[3:], axis=1)], axis=0)
    shipped = Segmenter.from_pretrained("unet-dsb2018")
    for segmenter, floor in ((shipped, 0.95), (shipped.with_settings(diameter=None), 0.98)):
        result = segment_blockwise(segmenter, mosaic, block=256, margin=64)
        diameter = None if np.isnan(result.diameter) else result.diameter
        whole = segmenter.with_levels(segmenter.image_levels(mosaic)).segment_instances(mosaic, diameter=diameter)
        blocks = np.asarray(result.labels)
        assert dsb_score(whole.labels, blocks) >= floor
        assert (iou_matrix(whole.labels, blocks).max(axis=1) >= 0.5).all()
        assert abs(int(blocks.max()) - int(whole.labels.max())) <= 0.02 * whole.labels.max()


class ReadLog:
    """An image that records the pixels each read takes and refuses to be read whole."""

    def __init__(self, image: np.ndarray) -> None:
        self.image, self.shape, self.dtype, self.reads = image, image.shape, image.dtype, []

    def __getitem__(self, index):
        pixels = self.image[index]
        self.reads.append(pixels.shape[0] * pixels.shape[1])
        return pixels

    def __array__(self, dtype=None):
        raise AssertionError("the whole image was read at once")


def test_memory_stays_bounded_by_one_block_whatever_the_image_size(monkeypatch) -> None:
    import tracemalloc

    import nucleilib.big as big

    monkeypatch.setattr(big, "LEVEL_SAMPLE_PIXELS", 128 * 128)  # the levels from a sparse sample
    tile, _ = discs_image((256, 256))
    window = (128 + 2 * 32) ** 2
    peaks = {}
    for repeat in (2, 4):  # 512 x 512, then 1024 x 1024: four times the pixels
        image = ReadLog(np.tile(tile, (repeat, repeat)))
        seen = []
        segmenter = Segmenter(lambda x, seen=seen: seen.append(x.shape[1] * x.shape[2]) or x[..., :1], BRIGHT)
        out = np.zeros(image.shape, np.uint32)
        tracemalloc.start()
        result = segment_blockwise(segmenter, image, out, block=128, margin=32)
        peaks[repeat] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert result.blocks == repeat * repeat * 4 and result.nuclei > 0
        # Never more than one block with its margin read, or given to the network, at a time.
        assert max(image.reads) <= window and max(seen) <= window
    # Four times the image, not four times the memory: the peak is one block's work.
    assert peaks[4] < 1.5 * peaks[2], peaks
    assert peaks[4] < (1024 * 1024 * 3 * 4) / 4, peaks  # a quarter of the whole float32 input


def test_a_tiff_is_read_and_written_window_by_window_and_left_unmapped(tmp_path: Path) -> None:
    import tifffile

    from nucleilib.big import TiffWindows, open_image

    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("needs /proc/self/maps (Linux)")
    image, count = discs_image()
    tifffile.imwrite(tmp_path / "mosaic.tif", image)  # uncompressed
    source = open_image(tmp_path / "mosaic.tif")
    out = open_labels(str(tmp_path / "labels.tif"), image.shape)
    assert isinstance(source, TiffWindows) and isinstance(out, TiffWindows)
    result = segment_blockwise(Segmenter(lambda x: x[..., :1], BRIGHT), source, out, block=96)
    # A memory map of either file kept open would hold every page touched so far in this process.
    assert str(tmp_path) not in maps.read_text()
    assert result.nuclei == count and int(tifffile.imread(tmp_path / "labels.tif").max()) == count
    with pytest.raises(ValueError, match="reading only"):
        source[0:1, 0:1] = 0


def test_blocks_give_the_network_one_tile_at_a_time() -> None:
    image, count = discs_image()
    batches = []
    segmenter = Segmenter(lambda x: batches.append(len(x)) or x[..., :1], BRIGHT, tile=96)
    assert segmenter.tile_batch == 4 and segmenter.with_settings().tile_batch == 4
    result = segment_blockwise(segmenter, image, block=192, margin=32)
    assert result.nuclei == count and len(batches) > result.blocks and set(batches) == {1}
    batches.clear()
    segmenter.segment(image)  # a whole image: four tiles a call
    assert max(batches) == 4
