"""nuclei predict on a Dask cluster (a LocalCluster of 2 processes): the same outputs as the serial
run, for many images and for the blocks of one large image; zarr and tiled TIFF in and out."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from test_big import BRIGHT, discs_image

from nucleilib import models
from nucleilib.big import open_image, open_labels, segment_blockwise
from nucleilib.cli import main
from nucleilib.models import ModelConfig
from nucleilib.segmenter import Segmenter

pytest.importorskip("dask.distributed")


def bright_network(x: np.ndarray) -> np.ndarray:
    return x[..., :1]


def bright_segmenter() -> Segmenter:
    return Segmenter(bright_network, BRIGHT, diameter=None)


@pytest.fixture(scope="module")
def client():
    import cloudpickle
    from dask.distributed import Client, LocalCluster

    # The workers cannot import this test module: its functions travel by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with Client(cluster) as connected:
        yield connected
    cluster.close()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tensorflow as tf

    config = ModelConfig(base_filters=2, depth=2, outputs=("foreground", "border"), min_size=1)
    folder = tmp_path_factory.mktemp("model")
    # Seeded: an untrained network finds nuclei in the test images with some initial weights
    # only, and unseeded ones depended on which tests ran before.
    tf.keras.utils.set_random_seed(0)
    models.save_model(models.build_unet(config), config, folder)
    return folder


def test_blocks_segmented_on_a_cluster_equal_the_serial_run(client) -> None:
    image, _ = discs_image()
    serial = segment_blockwise(bright_segmenter(), image, block=96, margin=32)
    clustered = segment_blockwise(
        bright_segmenter(), image, block=96, margin=32, client=client, make_segmenter=bright_segmenter
    )
    assert serial.nuclei > 20 and clustered.blocks == serial.blocks
    np.testing.assert_array_equal(clustered.labels, serial.labels)
    assert clustered.table.equals(serial.table)


def test_a_client_needs_a_picklable_recipe(client) -> None:
    with pytest.raises(ValueError, match="make_segmenter"):
        segment_blockwise(bright_segmenter(), np.zeros((64, 64), np.uint8), block=32, client=client)


def _images(folder: Path) -> Path:
    folder.mkdir()
    for index in range(5):
        image, _ = discs_image((96, 128), seed=index)
        Image.fromarray(image).save(folder / f"small{index}.png")
    large, _ = discs_image((300, 420), seed=9)
    tifffile.imwrite(folder / "large.tif", np.stack([large] * 3, axis=-1), tile=(64, 64), compression="zlib")
    return folder


def test_predict_on_a_scheduler_writes_what_one_process_writes(client, tiny_model: Path, tmp_path: Path) -> None:
    inputs = _images(tmp_path / "images")
    options = ["--model", str(tiny_model), "--diameter", "none", "--block", "192", "--block-format", "zarr"]
    serial, clustered = tmp_path / "serial", tmp_path / "clustered"
    assert main(["predict", str(inputs), "-o", str(serial), *options]) == 0
    assert main(["predict", str(inputs), "-o", str(clustered), *options, "--scheduler", client.scheduler.address]) == 0
    for table in ("summary.csv", "nuclei.csv"):
        assert (clustered / table).read_text() == (serial / table).read_text()
    for path in serial.glob("*_labels.png"):
        assert (clustered / path.name).read_bytes() == path.read_bytes(), path.name
    import zarr

    blockwise = zarr.open_array(str(serial / "large_labels.zarr"), mode="r")
    assert blockwise.shape == (300, 420) and blockwise[:].max() > 0
    np.testing.assert_array_equal(zarr.open_array(str(clustered / "large_labels.zarr"), mode="r")[:], blockwise[:])
    assert not list(clustered.glob(".*partial*"))


def test_an_unreachable_scheduler_is_a_one_line_error(tiny_model: Path, tmp_path: Path, capsys) -> None:
    inputs = _images(tmp_path / "images")
    out = tmp_path / "out"
    code = main(
        ["predict", str(inputs), "-o", str(out), "--model", str(tiny_model), "--scheduler", "tcp://127.0.0.1:9"]
    )
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--scheduler tcp://127.0.0.1:9" in err and "Traceback" not in err
    assert not out.exists()


def test_zarr_and_tiled_ome_tiff_images_are_read_lazily_as_height_width_channels(tmp_path: Path) -> None:
    import zarr

    planes = np.random.default_rng(0).integers(0, 255, (3, 200, 300)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "slide.ome.tif", planes, tile=(64, 64), compression="zlib", metadata={"axes": "CYX"})
    stored = zarr.create_array(str(tmp_path / "slide.zarr"), shape=(200, 300, 3), chunks=(64, 64, 3), dtype=np.uint8)
    stored[:] = np.moveaxis(planes, 0, -1)
    for name in ("slide.ome.tif", "slide.zarr"):
        image = open_image(tmp_path / name)
        assert not isinstance(image, np.ndarray), name  # nothing decoded yet
        assert image.shape == (200, 300, 3)
        np.testing.assert_array_equal(np.asarray(image[50:70, 100:164]), np.moveaxis(planes, 0, -1)[50:70, 100:164])


def test_a_zarr_image_is_segmented_like_the_same_pixels_in_a_tiff(tiny_model: Path, tmp_path: Path) -> None:
    import zarr

    image, _ = discs_image((300, 420), seed=3)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    tifffile.imwrite(tmp_path / "a" / "mosaic.tif", image)
    zarr.create_array(str(tmp_path / "b" / "mosaic.zarr"), shape=image.shape, chunks=(100, 100), dtype=np.uint8)[:] = (
        image
    )
    options = ["--model", str(tiny_model), "--diameter", "none", "--block", "128"]
    assert main(["predict", str(tmp_path / "a"), "-o", str(tmp_path / "out-tif"), *options]) == 0
    assert main(["predict", str(tmp_path / "b" / "mosaic.zarr"), "-o", str(tmp_path / "out-zarr"), *options]) == 0
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "out-zarr" / "mosaic_labels.tif"),
        tifffile.imread(tmp_path / "out-tif" / "mosaic_labels.tif"),
    )


def test_zarr_labels_are_chunked_by_block(tmp_path: Path) -> None:
    out = open_labels(str(tmp_path / "labels.zarr"), (300, 420), chunk=128)
    result = segment_blockwise(bright_segmenter(), discs_image()[0], out, block=128, margin=32)
    import zarr

    reopened = zarr.open_array(str(tmp_path / "labels.zarr"), mode="r")
    assert reopened.chunks == (128, 128) and reopened.dtype == np.uint32
    assert int(reopened[:].max()) == result.nuclei > 0
