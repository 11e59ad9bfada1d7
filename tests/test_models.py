"""The networks, their loss and metrics, compiling, saving and loading, shipped models, the
mixed-precision policy and the training cache (nucleilib.models, nucleilib.training)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from nucleilib import models, training
from nucleilib.errors import ModelNotFoundError, NucleiError


def test_plain_unet_has_the_paper_parameter_count() -> None:
    # The Keras starter for this competition (and the paper's "1.94 M").
    plain = models.ModelConfig(residual=False, batch_norm=False, outputs=("foreground",))
    assert models.build_unet(plain).count_params() == 1_941_105


def test_residual_bn_unet_is_about_2_03_million() -> None:
    count = models.build_unet(models.ModelConfig()).count_params()
    assert 2_000_000 < count < 2_060_000


@pytest.mark.parametrize("shape", [(32, 48), (64, 64)])
def test_output_has_input_size_and_one_channel_per_output(shape: tuple[int, int]) -> None:
    config = models.ModelConfig(base_filters=4, depth=3, outputs=("foreground", "border"))
    model = models.build_unet(config)
    x = np.random.default_rng(0).random((2, *shape, 3), dtype=np.float32)
    y = model(x, training=False).numpy()
    assert y.shape == (2, *shape, 2)
    assert (y >= 0).all() and (y <= 1).all()


def test_grey_input_model_takes_one_channel() -> None:
    model = models.build_unet(models.ModelConfig(base_filters=4, depth=2, in_channels=1))
    assert model.input_shape == (None, None, None, 1)


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="architecture"):
        models.build_unet(models.ModelConfig(architecture="transformer"))
    with pytest.raises(ValueError, match="positive"):
        models.build_unet(models.ModelConfig(depth=0))


def test_loss_is_small_for_a_perfect_prediction_and_large_for_the_inverse() -> None:
    import tensorflow as tf

    loss = models.bce_dice_loss()
    truth = np.zeros((1, 16, 16, 2), np.float32)
    truth[0, 4:12, 4:12, 0] = 1
    truth[0, 4:12, 4, 1] = 1
    perfect = float(loss(tf.constant(truth), tf.constant(truth)))
    inverse = float(loss(tf.constant(truth), tf.constant(1 - truth)))
    assert perfect < 0.01
    assert inverse > 10


def test_border_weight_scales_only_the_second_channel() -> None:
    import tensorflow as tf

    truth = np.zeros((1, 8, 8, 2), np.float32)
    truth[0, 2:6, 2:6, 0] = 1
    pred = np.full_like(truth, 0.5)
    pred[..., 0] = truth[..., 0]  # foreground perfect, border uninformative
    base = float(models.bce_dice_loss(1.0)(tf.constant(truth), tf.constant(pred)))
    double = float(models.bce_dice_loss(2.0)(tf.constant(truth), tf.constant(pred)))
    foreground_only = float(models.bce_dice_loss(0.0)(tf.constant(truth), tf.constant(pred)))
    assert double - base == pytest.approx(base - foreground_only, rel=1e-4)
    assert base > foreground_only


def test_metrics_on_a_known_batch() -> None:
    import tensorflow as tf

    truth = np.zeros((1, 4, 4, 1), np.float32)
    truth[0, :2, :2] = 1  # 4 pixels
    pred = np.zeros_like(truth)
    pred[0, :2, :3] = 0.9  # 6 pixels, 4 of them right
    assert float(models.foreground_iou(tf.constant(truth), tf.constant(pred))) == pytest.approx(4 / 6)
    assert float(models.foreground_accuracy(tf.constant(truth), tf.constant(pred))) == pytest.approx(14 / 16)


def test_save_and_load_round_trip_float16(tmp_path: Path) -> None:
    config = models.ModelConfig(base_filters=4, depth=2, threshold=0.4, separation="watershed")
    model = models.build_unet(config)
    folder = models.save_model(model, config, tmp_path / "m", card={"profile": "test"})
    loaded, loaded_config = models.load_model(folder)
    assert loaded_config == config
    x = np.random.default_rng(1).random((1, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=2e-2)
    assert json.loads((folder / "card.json").read_text())["profile"] == "test"


def test_unknown_model_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model 'nope'") as caught:
        models.load_model("nope")
    assert "shipped: unet-dsb2018" in str(caught.value)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, FileNotFoundError)


def test_model_folder_by_name_and_by_path(tmp_path: Path) -> None:
    assert models.model_folder("unet-dsb2018") == models.PRETRAINED_DIR / "unet-dsb2018"
    assert models.model_folder(str(tmp_path)) == tmp_path and models.model_folder(tmp_path) == tmp_path
    assert models.available_models() == sorted(models.available_models())
    assert "unet-dsb2018" in models.available_models()
    with pytest.raises(ModelNotFoundError, match="not a folder, and not a shipped model"):
        models.model_folder(tmp_path / "absent")


def test_shipped_model_card_and_config() -> None:
    config = models.load_config(models.model_folder("unet-dsb2018"))
    assert isinstance(config, models.ModelConfig) and config.in_channels in (1, 3)
    card = models.model_card("unet-dsb2018")
    assert card["name"] == "unet-dsb2018" and card["parameters"] > 0
    assert card["separation"] == config.separation
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        models.model_card("nope")


def test_load_config_names_a_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="config.json"):
        models.load_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelNotFoundError, match="not a model configuration"):
        models.load_config(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(NucleiError, match="config.json"):
        models.load_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "unet", "depth": 3, "unknown": 1}))
    assert models.load_config(tmp_path) == models.ModelConfig(depth=3)


def test_compile_model_sets_the_loss_metrics_and_optimiser() -> None:
    model = models.build_unet(models.ModelConfig(base_filters=2, depth=2))
    assert models.compile_model(model, learning_rate=0.01) is model
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    x = np.zeros((2, 32, 32, 3), np.float32)
    y = np.zeros((2, 32, 32, 2), np.float32)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert {"loss", "iou", "accuracy"} <= set(logs)


def test_loading_a_folder_with_missing_weights_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(models.ModelConfig().to_json())
    with pytest.raises(ModelNotFoundError, match="weights.npz"):
        models.load_model_folder(tmp_path)


def test_training_digest_depends_on_config_and_data() -> None:
    config = training.TrainConfig()
    base = training.training_digest(config, ["a", "b"], ["c"])
    assert base == training.training_digest(config, ["b", "a"], ["c"])
    assert base != training.training_digest(config, ["a"], ["c"])
    assert base != training.training_digest(training.with_model(config, sigma=1.5), ["a", "b"], ["c"])
    assert base != training.training_digest(training.TrainConfig(crop=64), ["a", "b"], ["c"])


def test_fields_added_later_leave_earlier_digests_alone() -> None:
    config = training.TrainConfig()
    values = config.as_dict()
    assert not {"scale_jitter", "colour", "balance"} & set(values)
    assert not {"diameter", "colour_input"} & set(values["model"])
    for changed in (
        training.TrainConfig(scale_jitter=1.25),
        training.TrainConfig(colour=True),
        training.TrainConfig(balance="modality"),
        training.with_model(config, diameter=20.0),
        training.with_model(config, colour_input="hematoxylin"),
    ):
        assert training.training_digest(changed, ["a"], ["b"]) != training.training_digest(config, ["a"], ["b"])


def test_prepare_arrays_rescales_each_image_to_the_model_diameter() -> None:
    from skimage.draw import disk

    from nucleilib.data import Sample
    from nucleilib.scale import typical_diameter

    samples = []
    for k, radius in enumerate((5, 20)):
        labels = np.zeros((120, 120), np.uint16)
        labels[disk((40, 40), radius)] = 1
        labels[disk((85, 80), radius)] = 2
        image = np.where(labels[..., None] > 0, 200, 10).astype(np.uint8).repeat(3, axis=-1)
        samples.append(Sample(f"s{k}", image, labels))
    config = training.with_model(training.TrainConfig(), diameter=20.0)
    images, targets = training.prepare_arrays(samples, config)
    for sample, image, target in zip(samples, images, targets):
        factor = 20.0 / typical_diameter(sample.labels)
        assert image.shape[:2] == target.shape[:2] == (round(120 * factor), round(120 * factor))
        from scipy import ndimage

        regions, n = ndimage.label(target[..., 0] > 0.5)
        assert n == 2 and np.sqrt(4 * (regions == 1).sum() / np.pi) == pytest.approx(20.0, rel=0.15)
    plain_images, _ = training.prepare_arrays(samples, training.TrainConfig())
    assert [im.shape for im in plain_images] == [(120, 120, 3)] * 2


def test_an_unknown_balance_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="balance"):
        training.train(training.TrainConfig(balance="groups"), [], [], tmp_path)
    with pytest.raises(ValueError, match="balance"):
        training.balance_weights([], "by-size")


@pytest.mark.slow
def test_training_runs_saves_and_is_reused(tmp_path: Path, capsys, monkeypatch) -> None:
    from nucleilib.data import Sample

    rng = np.random.default_rng(0)
    samples = []
    for k in range(4):
        labels = np.zeros((48, 56), np.uint16)
        for j, (y, x) in enumerate(rng.integers(8, 40, size=(3, 2)), start=1):
            yy, xx = np.mgrid[:48, :56]
            labels[((yy - y) ** 2 + (xx - x) ** 2 < 25) & (labels == 0)] = j
        image = np.where(labels[..., None] > 0, 200, 20).astype(np.uint8).repeat(3, axis=-1)
        samples.append(Sample(f"s{k}", image, labels))
    config = training.TrainConfig(
        model=models.ModelConfig(base_filters=4, depth=2),
        crop=32,
        batch_size=2,
        epochs=2,
        steps_per_epoch=2,
        val_tile=32,
        patience=2,
    )
    log = tmp_path / "progress.log"
    monkeypatch.setenv("NUCLEI_PROGRESS_LOG", str(log))
    first = training.train(config, samples[:3], samples[3:], tmp_path, verbose=0)
    assert not first.reused and len(first.history) == 2
    # One progress line per epoch, on the terminal and in the log, with the losses and the time left.
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("training ")]
    assert [line.split(",")[0] for line in lines] == [f"training {first.folder.name}: {k} of 2 epochs" for k in (1, 2)]
    assert "val_loss" in lines[0] and "left" in lines[0]
    assert [line.split(" ", 1)[1] for line in log.read_text().splitlines()] == lines
    assert {"loss", "val_loss", "iou", "val_iou", "accuracy", "val_accuracy"} <= set(first.history.columns)
    info = json.loads((first.folder / "train-config.json").read_text())
    assert info["epochs_run"] == 2 and info["precision_policy"] == "float32"
    assert info["machine"]["cores"] == os.cpu_count() and info["tensorflow"].startswith("2.14")
    second = training.train(config, samples[:3], samples[3:], tmp_path, verbose=0)
    assert second.reused and second.folder == first.folder
    renamed = training.train(config, samples[:3], samples[3:], tmp_path, name="other-label", verbose=0)
    assert renamed.reused and renamed.folder == first.folder
    x = np.random.default_rng(2).random((1, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(second.model(x).numpy(), first.model(x).numpy(), atol=1e-6)


@pytest.fixture
def policy_after():
    """Put the float32 policy back whatever a test leaves behind."""
    import tensorflow as tf

    yield tf.keras.mixed_precision
    tf.keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    ("mode", "policy"), [("off", "float32"), ("float16", "mixed_float16"), ("bfloat16", "mixed_bfloat16")]
)
def test_precision_sets_the_policy_for_the_block_only(policy_after, mode: str, policy: str) -> None:
    mixed_precision = policy_after
    mixed_precision.set_global_policy("float32")
    with training.precision(mode) as name:
        assert name == policy and mixed_precision.global_policy().name == policy
    assert mixed_precision.global_policy().name == "float32"


def test_precision_restores_the_previous_policy_when_the_block_raises(policy_after) -> None:
    mixed_precision = policy_after
    mixed_precision.set_global_policy("mixed_float16")
    with pytest.raises(RuntimeError, match="training failed"):
        with training.precision("bfloat16"):
            assert mixed_precision.global_policy().name == "mixed_bfloat16"
            raise RuntimeError("training failed")
    assert mixed_precision.global_policy().name == "mixed_float16"
    with pytest.raises(KeyboardInterrupt):
        with training.precision("off"):
            raise KeyboardInterrupt
    assert mixed_precision.global_policy().name == "mixed_float16"


def test_an_unknown_precision_changes_nothing(policy_after) -> None:
    mixed_precision = policy_after
    mixed_precision.set_global_policy("float32")
    with pytest.raises(ValueError, match="unknown mixed_precision 'fp8'"):
        with training.precision("fp8"):
            pass
    assert mixed_precision.global_policy().name == "float32"
    assert training.precision_policy("auto") in ("float32", "mixed_float16", "mixed_bfloat16")


def test_unknown_monitor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="monitor must be val_loss or val_iou"):
        training.train(training.TrainConfig(monitor="accuracy"), [], [], tmp_path)


# --------------------------------------------------------------------------- other architectures

SMALL = {
    "unet": models.ModelConfig(base_filters=4, depth=2),
    "resunet": models.ModelConfig(architecture="resunet", base_filters=4, depth=2, extra={"units_per_level": 1}),
    "deeplabv3plus": models.ModelConfig(architecture="deeplabv3plus", base_filters=4, extra={"aspp_filters": 8}),
}


@pytest.mark.parametrize("architecture", models.ARCHITECTURES)
@pytest.mark.parametrize("shape", [(64, 64), (48, 80)])
def test_every_architecture_keeps_the_input_size(architecture: str, shape: tuple[int, int]) -> None:
    model = models.build_model(SMALL[architecture])
    x = np.random.default_rng(0).random((2, *shape, 3), dtype=np.float32)
    y = model(x, training=False).numpy()
    assert y.shape == (2, *shape, 2)
    assert np.all((y >= 0) & (y <= 1))
    assert model.get_layer("logits") is not None and model.get_layer("probabilities") is not None


def test_deeplab_predicts_several_sizes_in_one_traced_function() -> None:
    # Keras' dilated Conv2D fails here on the second size (space-to-batch paddings).
    from nucleilib.backends import keras_predict_fn

    predict = keras_predict_fn(models.build_model(SMALL["deeplabv3plus"]))
    for shape in [(1, 64, 64, 3), (1, 96, 48, 3), (2, 80, 112, 3)]:
        assert predict(np.zeros(shape, np.float32)).shape == shape[:3] + (2,)


def test_dilated_convolution_matches_keras_on_a_fixed_size() -> None:
    import tensorflow as tf

    dilated = models._dilated_conv2d()(3, 3, dilation_rate=2, padding="same")
    reference = tf.keras.layers.Conv2D(3, 3, dilation_rate=2, padding="same")
    x = np.random.default_rng(1).random((1, 20, 24, 2), dtype=np.float32)
    dilated.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(dilated.get_weights())
    np.testing.assert_allclose(dilated(x).numpy(), reference(x).numpy(), atol=1e-5)


def test_resunet_depth_of_units_adds_parameters() -> None:
    one = models.build_model(SMALL["resunet"]).count_params()
    two = models.build_model(
        models.ModelConfig(architecture="resunet", base_filters=4, depth=2, extra={"units_per_level": 2})
    ).count_params()
    assert two > one


@pytest.mark.parametrize("architecture", models.ARCHITECTURES)
def test_save_and_load_round_trip_every_architecture(architecture: str, tmp_path: Path) -> None:
    config = SMALL[architecture]
    model = models.build_model(config)
    models.save_model(model, config, tmp_path, float16=False)
    loaded, loaded_config = models.load_model_folder(tmp_path)
    assert loaded_config == config
    x = np.random.default_rng(3).random((1, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'segnet'"):
        models.build_model(models.ModelConfig(architecture="segnet"))
    with pytest.raises(ValueError, match="cannot build architecture 'resunet'"):
        models.build_unet(models.ModelConfig(architecture="resunet"))


def test_flops_of_a_single_convolution_by_hand() -> None:
    # Plain U-Net of depth 1, base 1, one output: count every convolution by hand at 32x32.
    config = models.ModelConfig(base_filters=1, depth=1, residual=False, batch_norm=False, outputs=("foreground",))
    hw, half = 32 * 32, 16 * 16
    macs = (
        hw * 9 * 3 * 1
        + hw * 9 * 1 * 1  # enc1: 3->1, 1->1
        + half * 9 * 1 * 2
        + half * 9 * 2 * 2  # bottleneck: 1->2, 2->2
        + half * 4 * 2 * 1  # transposed conv 2->1, 2x2 kernel on the 16x16 input
        + hw * 9 * 2 * 1
        + hw * 9 * 1 * 1  # dec1 after concatenation: 2->1, 1->1
        + hw * 1 * 1 * 1
    )  # logits
    assert models.count_flops(config, 32) == 2 * macs


def test_flops_grow_with_image_area_and_reject_bad_sizes() -> None:
    config = SMALL["unet"]
    assert models.count_flops(config, 64) == 4 * models.count_flops(config, 32)
    with pytest.raises(ValueError, match="multiple of 16"):
        models.count_flops(config, 100)
