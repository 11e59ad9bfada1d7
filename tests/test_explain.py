"""Explanations of the U-Net (nucleilib.study.explain): Grad-CAM, LRP, the measures of the maps,
the sanity check, the tables and numbers the chapters quote."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from nucleilib import models
from nucleilib.study import explain

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = models.ModelConfig(base_filters=4, depth=2, outputs=("foreground", "border"))


@pytest.fixture(scope="module")
def tiny_model():
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    return models.build_unet(TINY)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)


@pytest.fixture
def square() -> np.ndarray:
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:12] = True  # 32 of 256 pixels
    return mask


# --------------------------------------------------------------------------- measures


def test_map_equal_to_mask_puts_all_relevance_inside(square: np.ndarray) -> None:
    result = explain.relevance_share(square.astype(float), square)
    assert result.share == 1.0
    assert result.area == pytest.approx(32 / 256)
    assert result.enrichment == pytest.approx(256 / 32)


@pytest.mark.parametrize("level", [0.3, 1.0, 7.0])
def test_uniform_map_gets_the_area_share(square: np.ndarray, level: float) -> None:
    result = explain.relevance_share(np.full(square.shape, level), square)
    assert result.share == pytest.approx(result.area)
    assert result.enrichment == pytest.approx(1.0)


def test_negative_relevance_is_ignored_and_no_positive_relevance_is_nan(square: np.ndarray) -> None:
    values = np.where(square, 1.0, -5.0)
    assert explain.relevance_share(values, square).share == 1.0
    nothing = explain.relevance_share(-np.ones(square.shape), square)
    assert np.isnan(nothing.share) and np.isnan(nothing.enrichment)
    assert nothing.area == pytest.approx(32 / 256)


def test_relevance_outside_the_mask_gives_share_zero(square: np.ndarray) -> None:
    result = explain.relevance_share((~square).astype(float), square)
    assert result.share == 0.0 and result.enrichment == 0.0


@pytest.mark.parametrize(
    ("peak", "tolerance", "expected"),
    [((5, 6), 0, True), ((0, 0), 0, False), ((9, 6), 0, False), ((9, 6), 2, True), ((15, 15), 2, False)],
)
def test_pointing_game(square: np.ndarray, peak: tuple[int, int], tolerance: float, expected: bool) -> None:
    heat = np.zeros(square.shape)
    heat[peak] = 1.0
    assert explain.pointing_game(heat, square, tolerance=tolerance) is expected


def test_a_constant_map_points_nowhere(square: np.ndarray) -> None:
    assert explain.pointing_game(np.ones(square.shape), square) is False
    assert explain.pointing_game(square.astype(float), np.zeros_like(square)) is False


def test_correlation_is_one_for_the_mask_and_minus_one_for_its_inverse(square: np.ndarray) -> None:
    assert explain.map_correlation(square.astype(float), square) == pytest.approx(1.0)
    assert explain.map_correlation(3.0 * square + 2.0, square) == pytest.approx(1.0)
    assert explain.map_correlation((~square).astype(float), square) == pytest.approx(-1.0)


def test_constant_maps_and_masks_give_zero_without_warnings(square: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert explain.map_correlation(np.zeros(square.shape), square) == 0.0
        assert explain.map_correlation(square.astype(float), np.zeros_like(square)) == 0.0
        assert explain.map_similarity(np.zeros((4, 4)), np.arange(16.0).reshape(4, 4)) == 0.0


def test_rank_similarity_is_invariant_to_monotone_changes() -> None:
    x = np.random.default_rng(1).random((8, 8))
    assert explain.map_similarity(x, np.exp(5 * x)) == pytest.approx(1.0)
    assert explain.map_similarity(x, -x) == pytest.approx(-1.0)
    assert explain.map_similarity(x - 0.5, 0.5 - x, absolute=True) == pytest.approx(1.0)
    other = np.random.default_rng(2).random((8, 8))
    assert abs(explain.map_similarity(x, other)) < 0.5


def test_explanation_metrics_has_one_row_per_image(square: np.ndarray) -> None:
    maps = [square.astype(float), np.ones(square.shape), -square.astype(float)]
    table = explain.explanation_metrics(maps, [square] * 3, ["a", "b", "c"])
    assert list(table["image_id"]) == ["a", "b", "c"]
    assert table["relevance_share"].tolist()[:2] == pytest.approx([1.0, 32 / 256])
    assert np.isnan(table.loc[2, "relevance_share"])
    assert table["pointing_game"].tolist() == [1.0, 0.0, 0.0]
    assert table.loc[0, "mean_inside"] == 1.0 and table.loc[0, "mean_outside"] == 0.0
    assert table["positive_pixels"].tolist() == [32, 256, 0]
    assert table["positive_regions"].tolist() == [1, 1, 0]


def test_an_empty_mask_leaves_pointing_and_correlation_undefined() -> None:
    table = explain.explanation_metrics([np.eye(4)], [np.zeros((4, 4), bool)], ["empty"])
    assert np.isnan(table.loc[0, "pointing_game"]) and np.isnan(table.loc[0, "correlation"])
    assert table.loc[0, "area_share"] == 0.0 and np.isnan(table.loc[0, "mean_inside"])


def test_two_separate_blobs_are_two_positive_regions() -> None:
    heat = np.zeros((10, 10))
    heat[1:3, 1:3] = heat[6:9, 6:9] = 1.0
    table = explain.explanation_metrics([heat], [heat > 0], ["x"])
    assert table.loc[0, "positive_regions"] == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: explain.relevance_share(np.ones((4, 4)), np.ones((4, 5), bool)), "differ"),
        (lambda: explain.relevance_share(np.ones((2, 4, 4)), np.ones((4, 4), bool)), "2-D"),
        (lambda: explain.relevance_share(np.ones((4, 4)), np.full((4, 4), 2)), "0/1"),
        (lambda: explain.relevance_share(np.full((4, 4), np.nan), np.ones((4, 4), bool)), "NaN"),
        (lambda: explain.pointing_game(np.ones((4, 4)), np.ones((4, 4), bool), tolerance=-1), "tolerance"),
        (lambda: explain.map_similarity(np.ones((4, 4)), np.ones((3, 4))), "differ"),
        (lambda: explain.explanation_metrics([np.ones((4, 4))], [], ["a"]), "must match"),
        (lambda: explain.explanation_metrics([], [], []), "no maps"),
        (lambda: explain.explanation_metrics([np.ones((4, 4))], [np.ones((4, 4), bool)], "a"), "sequence"),
    ],
)
def test_bad_inputs_to_measures_are_refused(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- choosing images


def test_picks_per_modality_are_reproducible_and_capped() -> None:
    import pandas as pd

    table = pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(10)],
            "modality": ["fluorescence"] * 6 + ["brightfield"] + ["stained tissue"] * 3,
        }
    )
    picks = explain.pick_per_modality(table, 2, seed=7, modalities=["fluorescence", "brightfield", "stained tissue"])
    assert len(picks) == 5 and "i6" in picks
    assert picks == explain.pick_per_modality(
        table.iloc[::-1], 2, seed=7, modalities=["fluorescence", "brightfield", "stained tissue"]
    )
    assert explain.pick_per_modality(table, 2, seed=7, modalities=["tissue"]) == []
    assert len(set(tuple(explain.pick_per_modality(table, 2, seed=k)) for k in range(6))) > 1
    with pytest.raises(ValueError, match="positive"):
        explain.pick_per_modality(table, 0)
    with pytest.raises(ValueError, match="modality"):
        explain.pick_per_modality(table[["image_id"]], 1)


@pytest.mark.parametrize(("shape", "size"), [((6, 9), 4), ((3, 5, 3), 8), ((16, 16), 16), ((1, 1), 3)])
def test_centre_crop_always_has_the_requested_size(shape: tuple[int, ...], size: int) -> None:
    array = np.arange(int(np.prod(shape))).reshape(shape)
    crop = explain.centre_crop(array, size)
    assert crop.shape == (size, size, *shape[2:]) and crop.dtype == array.dtype
    if shape[0] >= size and shape[1] >= size:
        top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
        np.testing.assert_array_equal(crop, array[top : top + size, left : left + size])


@pytest.mark.parametrize(
    ("centre", "corner"), [((0, 0), (0, 0)), ((9, 9), (6, 6)), ((5, 2), (3, 0)), ((4.5, 4.5), (3, 3))]
)
def test_centre_crop_centres_where_asked_and_stays_inside(centre: tuple[float, float], corner: tuple[int, int]) -> None:
    array = np.arange(100).reshape(10, 10)
    crop = explain.centre_crop(array, 4, centre=centre)
    np.testing.assert_array_equal(crop, array[corner[0] : corner[0] + 4, corner[1] : corner[1] + 4])


def test_centre_crop_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="size"):
        explain.centre_crop(np.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match="non-empty"):
        explain.centre_crop(np.zeros(4), 2)
    with pytest.raises(ValueError, match="centre"):
        explain.centre_crop(np.zeros((4, 4)), 2, centre=(np.nan, 1))


# --------------------------------------------------------------------------- Grad-CAM


def test_score_is_the_mean_probability_per_image(tiny_model, images: np.ndarray) -> None:
    scorer = explain.score_model(tiny_model)
    score = scorer(images).numpy()
    probs = tiny_model(images).numpy()
    assert score.shape == (2, 1)
    np.testing.assert_allclose(score[:, 0], probs[..., 0].mean(axis=(1, 2)), rtol=1e-5)
    border = explain.score_model(tiny_model, target="border")(images).numpy()
    np.testing.assert_allclose(border[:, 0], probs[..., 1].mean(axis=(1, 2)), rtol=1e-5)


def test_region_score_is_the_probability_mass_inside(tiny_model, images: np.ndarray) -> None:
    region = np.zeros((32, 32), bool)
    region[3:9, 10:20] = True
    score = explain.score_model(tiny_model, region=region)(images).numpy()
    probs = tiny_model(images).numpy()[..., 0]
    np.testing.assert_allclose(score[:, 0], probs[:, region].sum(axis=1), rtol=1e-5)


def test_score_model_keeps_the_layer_names(tiny_model) -> None:
    scorer = explain.score_model(tiny_model)
    assert scorer.get_layer("enc2_relu2") is tiny_model.get_layer("enc2_relu2")
    assert scorer.output_shape == (None, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "nucleus"}, "unknown target"),
        ({"target": 2}, "2 output channel"),
        ({"region": np.zeros((32, 32), bool)}, "empty"),
        ({"region": np.ones(32, bool)}, "2-D"),
    ],
)
def test_score_model_refuses_bad_targets_and_regions(tiny_model, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        explain.score_model(tiny_model, **kwargs)


def test_default_layers_exist_at_several_depths(tiny_model) -> None:
    assert explain.default_cam_layers(tiny_model) == ["enc1_relu2", "bottleneck_relu2", "dec1_relu2"]


def test_grad_cam_maps_have_the_input_size_and_unit_range(tiny_model, images: np.ndarray) -> None:
    maps = explain.grad_cam(tiny_model, images, "dec1_relu2")
    assert maps.shape == (2, 32, 32) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert np.allclose(maps.max(axis=(1, 2)), 1.0) or np.all(maps.max(axis=(1, 2)) == 0)


def test_grad_cam_depends_on_the_layer_and_the_region(tiny_model, images: np.ndarray) -> None:
    shallow = explain.grad_cam(tiny_model, images, "enc1_relu2")
    deep = explain.grad_cam(tiny_model, images, "bottleneck_relu2")
    assert not np.allclose(shallow, deep)
    region = np.zeros((32, 32), bool)
    region[:8, :8] = True
    local = explain.grad_cam(tiny_model, images, "enc1_relu2", region=region)
    assert not np.allclose(shallow, local)


def test_grad_cam_batches_give_the_same_maps(tiny_model, images: np.ndarray) -> None:
    together = explain.grad_cam(tiny_model, images, "enc2_relu2", batch_size=2)
    apart = explain.grad_cam(tiny_model, images, "enc2_relu2", batch_size=1)
    np.testing.assert_allclose(together, apart, atol=1e-5)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros((2, 32, 32, 3), np.float32), "no_such_layer"), {}, "no layer 'no_such_layer'"),
        ((np.zeros((32, 32, 3), np.float32), "enc1_relu2"), {}, r"\(N, H, W, C\)"),
        ((np.zeros((1, 32, 32, 1), np.float32), "enc1_relu2"), {}, "expects inputs"),
        ((np.zeros((1, 32, 32, 3), np.float32), "enc1_relu2"), {"region": np.ones((16, 16), bool)}, "does not match"),
        ((np.zeros((1, 32, 32, 3), np.float32), "enc1_relu2"), {"batch_size": 0}, "batch_size"),
    ],
)
def test_grad_cam_refuses_bad_input(tiny_model, args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        explain.grad_cam(tiny_model, *args, **kwargs)


# --------------------------------------------------------------------------- randomisation


def test_randomised_copy_differs_and_the_original_is_untouched(tiny_model, images: np.ndarray) -> None:
    before = [w.copy() for w in tiny_model.get_weights()]
    output = tiny_model(images).numpy()
    scrambled = explain.randomise_weights(tiny_model, seed=3)
    assert scrambled is not tiny_model
    assert [layer.name for layer in scrambled.layers] == [layer.name for layer in tiny_model.layers]
    assert not np.allclose(scrambled(images).numpy(), output, atol=1e-3)
    for old, new in zip(before, tiny_model.get_weights()):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(tiny_model(images).numpy(), output)


@pytest.mark.parametrize("method", explain.RANDOMISATIONS)
def test_only_the_chosen_layers_change_and_the_seed_repeats(tiny_model, method: str) -> None:
    first = explain.randomise_weights(tiny_model, ["logits", "dec1_conv2"], seed=5, method=method)
    again = explain.randomise_weights(tiny_model, ["logits", "dec1_conv2"], seed=5, method=method)
    for layer in tiny_model.layers:
        for old, new, same in zip(
            layer.get_weights(), first.get_layer(layer.name).get_weights(), again.get_layer(layer.name).get_weights()
        ):
            np.testing.assert_array_equal(new, same)
            if layer.name == "dec1_conv2" or (layer.name == "logits" and new.ndim == 4):
                assert not np.array_equal(old, new), layer.name
            elif layer.name not in ("logits",):
                np.testing.assert_array_equal(old, new)


def test_batch_norm_statistics_are_kept(tiny_model) -> None:
    scrambled = explain.randomise_weights(tiny_model, ["enc1_bn1"], seed=1, method="normal")
    old, new = tiny_model.get_layer("enc1_bn1").get_weights(), scrambled.get_layer("enc1_bn1").get_weights()
    assert not np.array_equal(old[0], new[0])  # gamma re-drawn
    np.testing.assert_array_equal(old[2], new[2])  # moving mean kept
    np.testing.assert_array_equal(old[3], new[3])  # moving variance kept


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": ["nope"]}, "no layer"),
        ({"layers": ["pool1"]}, "no trainable"),
        ({"layers": "logits"}, "not one string"),
        ({"method": "shuffle"}, "unknown method"),
        ({"seed": -1}, "seed"),
    ],
)
def test_randomise_refuses_bad_arguments(tiny_model, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        explain.randomise_weights(tiny_model, **kwargs)


def test_layer_blocks_run_from_the_output_to_the_input(tiny_model) -> None:
    blocks = [name for name, _ in explain.layer_blocks(tiny_model)]
    assert blocks == ["logits", "dec1", "up1", "dec2", "up2", "bottleneck", "enc2", "enc1"]
    assert dict(explain.layer_blocks(tiny_model))["enc1"][0] == "enc1_conv1"


# --------------------------------------------------------------------------- LRP


def test_logit_model_shares_weights_and_order_with_the_sigmoid_one(tiny_model, images: np.ndarray) -> None:
    logits = models.build_unet(TINY, final_activation=False)
    assert [w.shape for w in logits.get_weights()] == [w.shape for w in tiny_model.get_weights()]
    logits.set_weights(tiny_model.get_weights())
    assert logits.layers[-1].name == "logits"
    probs = 1.0 / (1.0 + np.exp(-logits(images).numpy()))
    np.testing.assert_allclose(probs, tiny_model(images).numpy(), atol=1e-5)


@pytest.mark.parametrize("fold", [True, False])
def test_lrp_model_gives_the_mean_foreground_logit(tiny_model, images: np.ndarray, fold: bool) -> None:
    # Batch statistics away from 0/1, so that folding has something to do.
    weights = [w.copy() for w in tiny_model.get_weights()]
    rng = np.random.default_rng(0)
    for layer in tiny_model.layers:
        if "_bn" in layer.name:
            start = sum(len(lay.weights) for lay in tiny_model.layers[: tiny_model.layers.index(layer)])
            weights[start + 2] = rng.normal(0, 0.2, weights[start + 2].shape).astype(np.float32)
            weights[start + 3] = rng.uniform(0.5, 2.0, weights[start + 3].shape).astype(np.float32)
    reference = models.build_unet(TINY, final_activation=False)
    reference.set_weights(weights)
    analysed = explain.lrp_model(TINY, weights, fold_batch_norm=fold)
    assert analysed.output_shape == (None, 1)
    assert all("_bn" not in layer.name for layer in analysed.layers) == fold
    expected = reference(images).numpy()[..., 0].mean(axis=(1, 2))
    np.testing.assert_allclose(analysed(images).numpy()[:, 0], expected, rtol=1e-4, atol=1e-5)
    assert not analysed.get_layer("select_channel").trainable


@pytest.mark.parametrize(
    ("config", "weights", "message"),
    [
        (TINY, [np.zeros(3)], "weight arrays"),
        (models.ModelConfig(architecture="resunet"), [], "U-Nets only"),
        ("unet", [], "ModelConfig"),
    ],
)
def test_lrp_model_refuses_bad_input(config, weights, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        explain.lrp_model(config, weights)


def test_lrp_model_refuses_weights_of_the_wrong_shape(tiny_model) -> None:
    weights = tiny_model.get_weights()
    weights[0] = np.zeros((5, 5, 3, 4), np.float32)
    with pytest.raises(ValueError, match="expected shape"):
        explain.lrp_model(TINY, weights)


def test_lrp_maps_refuse_eager_mode(tiny_model, images: np.ndarray) -> None:
    with pytest.raises(RuntimeError, match="disable_eager_execution"):
        explain.lrp_maps(tiny_model, images, "lrp.epsilon")


LRP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    from nucleilib import models
    from nucleilib.study import explain

    config = models.ModelConfig(base_filters=4, depth=2, outputs=("foreground", "border"))
    tf.keras.utils.set_random_seed(0)
    weights = models.build_unet(config).get_weights()
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    report = {}
    for rule in sys.argv[1].split(","):
        tf.keras.backend.clear_session()
        maps = explain.lrp_maps(explain.lrp_model(config, weights), x, rule)
        report[rule] = {"shape": list(maps.shape), "finite": bool(np.isfinite(maps).all()),
                        "nonzero": bool(np.abs(maps).max() > 0), "dtype": str(maps.dtype)}
    analysed = explain.lrp_model(config, weights)
    try:
        explain.lrp_maps(analysed, x, "lrp.nonsense")
    except ValueError as err:
        report["bad_rule"] = str(err)
    scrambled = explain.randomise_weights(analysed, seed=1)
    report["randomised_differs"] = bool(np.abs(scrambled.predict(x) - analysed.predict(x)).max() > 1e-4)
    report["selector_kept"] = bool(np.array_equal(scrambled.get_layer("select_channel").get_weights()[0],
                                                  analysed.get_layer("select_channel").get_weights()[0]))

    # The chapter's computations: every rule in a fresh graph, the randomisation check, the cascade.
    options = {"lrp.epsilon": {"epsilon": 0.1}}
    run = explain.lrp_rule_maps(config, weights, x, ["lrp.epsilon"], options=options)
    alone = explain.lrp_maps(explain.fresh_lrp_model(config, weights), x, "lrp.epsilon", epsilon=0.1)
    logit = explain.fresh_lrp_model(config, weights).predict(x, verbose=0)[:, 0]
    report["rule_maps_repeat"] = bool(np.allclose(run.maps["lrp.epsilon"], alone, atol=1e-6))
    report["scores_are_logits"] = bool(np.allclose(run.scores["lrp.epsilon"], logit, atol=1e-6))
    report["timing_rules"] = list(run.timing().index)
    random_maps, sanity = explain.lrp_randomisation_check(config, weights, x, ["lrp.epsilon"], run.maps, ["a", "b"],
                                                          seed=1, options=options)
    report["random_shape"] = list(random_maps["lrp.epsilon"].shape)
    report["random_differs"] = bool(np.abs(random_maps["lrp.epsilon"] - alone).max() > 1e-6)
    report["sanity_rows"] = sanity[["image_id", "rule"]].values.tolist()
    report["sanity_in_range"] = bool(sanity["randomised_similarity_abs"].between(-1, 1).all())
    cascade = explain.lrp_cascade(config, weights, x, "lrp.epsilon", run.maps["lrp.epsilon"], ["logits", "nope"],
                                  seed=1, options=options, full_similarity=0.25)
    report["cascade_steps"] = cascade["randomised down to"].tolist()
    report["cascade_last"] = float(cascade["similarity |R|"].iloc[-1])
    report["cascade_in_range"] = bool(cascade["similarity |R|"].between(-1, 1).all())

    # Built the faster way (constants kept as tensors) and as Keras does by default: the same maps.
    from keras.src.engine import base_layer_utils
    for rule in ("lrp.alpha_1_beta_0", "lrp.sequential_preset_a"):
        fast = explain.lrp_maps(explain.fresh_lrp_model(config, weights), x, rule)
        default = explain.lrp_maps(explain.fresh_lrp_model(config, weights), x, rule, keep_constants_as_tensors=False)
        report[f"same_maps_{rule}"] = bool(np.array_equal(fast, default)) and bool(np.abs(fast).max() > 0)
    report["flag_restored"] = base_layer_utils._UNSAFE_GRAPH_OP_LAYER_CREATION is False
    print("REPORT " + json.dumps(report))
    """
)


@pytest.mark.slow
def test_lrp_maps_in_graph_mode_are_finite_and_have_the_input_shape() -> None:
    rules = ["lrp.epsilon"]  # the fastest rule; the notebook runs the others
    done = subprocess.run(
        [sys.executable, "-c", LRP_SCRIPT, ",".join(rules)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=480
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT ") :])
    for rule in rules:
        assert report[rule] == {"shape": [2, 32, 32], "finite": True, "nonzero": True, "dtype": "float32"}
    assert "unknown LRP rule" in report["bad_rule"]
    assert report["randomised_differs"] and report["selector_kept"]
    assert report["rule_maps_repeat"] and report["scores_are_logits"] and report["timing_rules"] == ["lrp.epsilon"]
    assert report["random_shape"] == [2, 32, 32] and report["random_differs"]
    assert report["sanity_rows"] == [["a", "lrp.epsilon"], ["b", "lrp.epsilon"]] and report["sanity_in_range"]
    assert report["cascade_steps"] == ["logits", "all (check above)"] and report["cascade_last"] == 0.25
    assert report["cascade_in_range"]
    assert report["same_maps_lrp.alpha_1_beta_0"] and report["same_maps_lrp.sequential_preset_a"]
    assert report["flag_restored"]


def test_explanation_windows_are_centred_on_the_nuclei_and_aligned() -> None:
    from nucleilib.data import Sample
    from nucleilib.models import ModelConfig

    labels = np.zeros((100, 120), np.uint16)
    labels[70:80, 90:100] = 1
    image = np.where(labels[..., None] > 0, 200, 10).astype(np.uint8).repeat(3, axis=-1)
    windows = explain.explanation_windows([Sample("a", image, labels)], ["fluorescence"], ModelConfig(), 32)
    assert windows.x.shape == (1, 32, 32, 3) and windows.raw.shape == (1, 32, 32, 3)
    assert windows.truth_labels.shape == (1, 32, 32)
    assert windows.truth[0].sum() == 100  # the whole nucleus is inside the window
    np.testing.assert_array_equal(windows.raw[0][..., 0] > 100, windows.truth[0])
    assert list(windows.table()["nuclei in window"]) == [1]
    with pytest.raises(ValueError, match="multiple of 16"):
        explain.explanation_windows([Sample("a", image, labels)], ["fluorescence"], ModelConfig(), 30)
    with pytest.raises(ValueError, match="1 samples but 2 modalities"):
        explain.explanation_windows([Sample("a", image, labels)], ["x", "y"], ModelConfig(), 32)


def test_pick_test_samples_reads_the_split_and_loads_only_picked_test_images(dsb, tmp_path, monkeypatch) -> None:
    from nucleilib import data
    from nucleilib.study import manifest as mf

    root = dsb.dataset(12)
    monkeypatch.setenv("NUCLEI_DATA_DIR", str(root))
    table = mf.build_manifest(data.load_dataset(root))
    artefacts = tmp_path / "artefacts"
    table.to_csv(artefacts.mkdir() or artefacts / "manifest.csv", index=False)
    mf.save_splits(table, artefacts / "splits", seed=0)
    test_ids = set(mf.load_split(artefacts / "splits" / "split-80-10-10.csv")["test"])
    samples, modality = explain.pick_test_samples(artefacts, "80-10-10", 1, seed=0)
    assert samples and {s.image_id for s in samples} <= test_ids
    assert len(set(modality)) == len(modality)  # one image per modality
    again, _ = explain.pick_test_samples(artefacts, "80-10-10", 1, seed=0, max_images=1)
    assert [s.image_id for s in again] == [samples[0].image_id]


# --------------------------------------------------------------------------- boundary band


def _ring(mask: np.ndarray) -> np.ndarray:
    """The mask's own outermost pixels (its inner outline)."""
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return mask & ~inner


@pytest.mark.parametrize(
    ("width", "band_pixels"),
    [(1, 10 * 10 - 6 * 6), (2, 12 * 12 - 4 * 4), (3, 14 * 14 - 2 * 2)],
)
def test_boundary_band_of_a_square_is_a_square_ring(width: int, band_pixels: int) -> None:
    mask = np.zeros((20, 20), bool)
    mask[6:14, 6:14] = True  # an 8 x 8 square: the band grows width rings outwards and inwards
    band = explain.boundary_band(mask, width)
    assert band.sum() == band_pixels
    assert band[6, 6] and band[5, 5] and not band[10, 10] and not band[0, 0]
    table = explain.explanation_metrics([_ring(mask).astype(float)], [mask], ["square"], boundary_width=width)
    assert table.loc[0, "boundary_share"] == 1.0
    assert table.loc[0, "boundary_area_share"] == pytest.approx(band_pixels / 400)


def test_boundary_band_default_width_and_uniform_map() -> None:
    mask = np.zeros((20, 20), bool)
    mask[6:14, 6:14] = True
    table = explain.explanation_metrics([np.ones((20, 20))], [mask], ["uniform"])
    assert table.loc[0, "boundary_area_share"] == pytest.approx((12 * 12 - 4 * 4) / 400)  # width 2
    assert table.loc[0, "boundary_share"] == pytest.approx(table.loc[0, "boundary_area_share"])


def test_relevance_away_from_the_outline_is_not_boundary_relevance() -> None:
    mask = np.zeros((20, 20), bool)
    mask[4:16, 4:16] = True
    heat = np.zeros((20, 20))
    heat[9:11, 9:11] = 1.0  # the centre of the nucleus
    heat[0, 19] = 1.0  # far out in the background
    table = explain.explanation_metrics([heat], [mask], ["centre"], boundary_width=2)
    assert table.loc[0, "boundary_share"] == 0.0
    assert table.loc[0, "relevance_share"] == pytest.approx(0.8)


def test_the_image_edge_is_not_an_outline() -> None:
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True  # a nucleus cut by the left edge of the crop
    band = explain.boundary_band(mask, 1)
    assert band.sum() == 2 * 10  # columns 4 and 5 only
    assert not band[:, 0].any() and not band[0, 1:4].any()


@pytest.mark.parametrize("mask", [np.zeros((6, 6), bool), np.ones((6, 6), bool)])
def test_an_empty_or_full_mask_has_no_band(mask: np.ndarray) -> None:
    assert not explain.boundary_band(mask).any()


def test_an_empty_mask_leaves_the_boundary_measures_undefined() -> None:
    table = explain.explanation_metrics([np.eye(4)], [np.zeros((4, 4), bool)], ["empty"])
    assert np.isnan(table.loc[0, "boundary_share"]) and np.isnan(table.loc[0, "boundary_area_share"])


def test_no_positive_relevance_gives_an_undefined_boundary_share(square: np.ndarray) -> None:
    table = explain.explanation_metrics([-np.ones(square.shape)], [square], ["negative"])
    assert np.isnan(table.loc[0, "boundary_share"]) and table.loc[0, "boundary_area_share"] > 0


@pytest.mark.parametrize("width", [0, -1, 1.5, True, "2"])
def test_bad_boundary_widths_are_refused(square: np.ndarray, width) -> None:
    with pytest.raises(ValueError, match="width"):
        explain.boundary_band(square, width)
    with pytest.raises(ValueError, match="boundary_width"):
        explain.explanation_metrics([square * 1.0], [square], ["a"], boundary_width=width)


# --------------------------------------------------------------------------- summaries


def _measures():
    import pandas as pd

    return pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "a", "b"],
            "layer": ["deep", "deep", "deep", "shallow", "shallow"],
            "modality": ["x", "x", "y", "x", "x"],
            "relevance_share": [0.2, 0.4, 0.6, 0.1, np.nan],
            "area_share": [0.1, 0.1, 0.4, 0.1, 0.1],
            "pointing_game": [1.0, 0.0, 1.0, 0.0, 0.0],
            "correlation": [0.3, 0.5, 0.7, 0.1, 0.1],
            "boundary_share": [0.5, 0.3, 0.4, 0.2, 0.2],
            "boundary_area_share": [0.2, 0.2, 0.2, 0.2, 0.2],
        }
    )


def test_summary_enrichment_is_the_ratio_of_the_means() -> None:
    summary = explain.summarise_measures(_measures(), "layer")
    assert list(summary.index) == ["deep", "shallow"]  # order of appearance
    assert list(summary.columns) == [
        "images",
        "relevance_share",
        "area_share",
        "enrichment",
        "pointing_game",
        "correlation",
        "boundary_share",
        "boundary_area_share",
        "boundary_enrichment",
    ]
    deep = summary.loc["deep"]
    assert deep["images"] == 3
    assert deep["relevance_share"] == pytest.approx(0.4) and deep["area_share"] == pytest.approx(0.2)
    assert deep["enrichment"] == pytest.approx(2.0)  # the mean of the per-image ratios would be 2.5
    assert deep["pointing_game"] == pytest.approx(2 / 3) and deep["correlation"] == pytest.approx(0.5)
    assert deep["boundary_enrichment"] == pytest.approx(0.4 / 0.2)
    shallow = summary.loc["shallow"]
    assert shallow["relevance_share"] == pytest.approx(0.1)  # NaN skipped
    assert shallow["enrichment"] == pytest.approx(1.0) and shallow["boundary_enrichment"] == pytest.approx(1.0)


def test_summary_by_several_columns_and_without_boundary_columns() -> None:
    table = _measures().drop(columns=["boundary_share", "boundary_area_share"])
    summary = explain.summarise_measures(table, ["layer", "modality"])
    assert list(summary.index) == [("deep", "x"), ("deep", "y"), ("shallow", "x")]
    assert "boundary_enrichment" not in summary.columns
    assert summary.loc[("deep", "x"), "enrichment"] == pytest.approx(3.0)


def test_summary_of_a_zero_area_is_nan() -> None:
    table = _measures().assign(area_share=0.0)
    assert explain.summarise_measures(table, "layer")["enrichment"].isna().all()


@pytest.mark.parametrize(
    ("change", "by", "message"),
    [
        (lambda t: t.drop(columns=["correlation"]), "layer", "correlation"),
        (lambda t: t, "rule", "rule"),
        (lambda t: t, [], "at least one column"),
        (lambda t: t.iloc[:0], "layer", "no rows"),
        (lambda t: t.to_dict(), "layer", "DataFrame"),
    ],
)
def test_summary_refuses_bad_tables(change, by, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        explain.summarise_measures(change(_measures()), by)


def test_summary_of_real_measures_has_one_row_per_layer(square: np.ndarray) -> None:
    table = explain.explanation_metrics([square * 1.0, np.ones(square.shape)], [square] * 2, ["a", "b"])
    summary = explain.summarise_measures(table.assign(layer="only"), "layer")
    assert summary.loc["only", "images"] == 2
    assert summary.loc["only", "enrichment"] == pytest.approx(table["relevance_share"].mean() / (32 / 256))


# --------------------------------------------------------------------------- figures


@pytest.fixture
def agg_backend():
    import matplotlib

    previous = matplotlib.get_backend()
    matplotlib.use("Agg")
    yield
    matplotlib.use(previous)


@pytest.fixture
def windows() -> explain.Windows:
    rng = np.random.default_rng(3)
    labels = np.zeros((3, 16, 16), np.uint16)
    labels[:, 3:8, 3:8] = 1
    labels[:, 10:14, 9:15] = 2
    return explain.Windows(
        ids=["image-a", "image-b", "image-c"],
        modality=["fluorescence", "brightfield", "tissue"],
        x=rng.random((3, 16, 16, 3), dtype=np.float32),
        raw=rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8),
        truth_labels=labels,
    )


@pytest.mark.parametrize(
    ("style", "n_maps", "rows"), [("heat", 2, [0, 1, 2]), ("signed", 1, [2]), ("heat", 3, range(2))]
)
def test_explanation_grid_has_one_axis_per_panel(agg_backend, windows, style: str, n_maps: int, rows) -> None:
    from matplotlib.figure import Figure

    rng = np.random.default_rng(0)
    sign = -1 if style == "signed" else 0
    heat = {f"map {j}": rng.uniform(sign, 1, (3, 16, 16)) for j in range(n_maps)}
    probs = rng.random((3, 16, 16))
    fig = explain.explanation_grid(windows, probs, heat, rows, windows.truth, style=style, title="a title")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(list(rows)) * (3 + n_maps)
    assert [ax.get_title() for ax in fig.axes[: 3 + n_maps]][1:] == ["truth", "foreground probability", *heat]
    assert fig.get_suptitle() == "a title"
    assert all(not ax.axison for ax in fig.axes)
    fig.canvas.draw()  # renders without error


def test_explanation_grid_outlines_only_windows_with_a_mask(agg_backend, windows) -> None:
    heat = {"m": np.zeros((3, 16, 16))}
    masks = [None, windows.truth[1], None]
    fig = explain.explanation_grid(windows, np.zeros((3, 16, 16)), heat, [0, 1], masks)
    contours = [len(ax.collections) for ax in fig.axes if ax.get_title() == "m"]
    assert contours == [0, 1]


def test_explanation_grid_is_not_left_open_in_pyplot(agg_backend, windows) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    explain.explanation_grid(windows, np.zeros((3, 16, 16)), {"m": np.zeros((3, 16, 16))}, [0], windows.truth)
    explain.placeholder_figure("not run in this profile")
    assert plt.get_fignums() == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"style": "rainbow"}, "unknown style"),
        ({"heat_by_name": {}}, "non-empty mapping"),
        ({"heat_by_name": {"m": np.zeros((2, 16, 16))}}, r"heat_by_name\['m'\]: expected shape \(3, 16, 16\)"),
        ({"heat_by_name": {"m": np.zeros((3, 8, 8))}}, "one map per window"),
        ({"probabilities": np.zeros((3, 16, 16, 1))}, "probabilities"),
        ({"rows": []}, "no window"),
        ({"rows": [3]}, "not the index"),
        ({"rows": [-1]}, "not the index"),
        ({"outline_masks": [None, None]}, "one mask"),
        ({"outline_masks": [np.zeros((8, 8), bool)] * 3}, r"outline_masks\[0\]"),
        ({"windows": "not windows"}, "Windows"),
    ],
)
def test_explanation_grid_refuses_mismatched_inputs(agg_backend, windows, change: dict, message: str) -> None:
    arguments = {
        "windows": windows,
        "probabilities": np.zeros((3, 16, 16)),
        "heat_by_name": {"m": np.zeros((3, 16, 16))},
        "rows": [0],
        "outline_masks": windows.truth,
    }
    style = change.pop("style", "heat")
    arguments |= change
    with pytest.raises(ValueError, match=message):
        explain.explanation_grid(
            arguments.pop("windows"),
            arguments.pop("probabilities"),
            arguments.pop("heat_by_name"),
            arguments.pop("rows"),
            arguments.pop("outline_masks"),
            style=style,
        )


def test_placeholder_figure_says_its_message(agg_backend) -> None:
    fig = explain.placeholder_figure("not run in this profile")
    assert [text.get_text() for text in fig.axes[0].texts] == ["not run in this profile"]
    with pytest.raises(ValueError, match="message"):
        explain.placeholder_figure("  ")


def test_confidence_readings_pool_the_pixels_of_all_windows() -> None:
    probabilities = np.array([[[0.9, 0.2], [0.6, 0.1]], [[0.3, 0.3], [0.3, 0.3]]])
    predicted = probabilities > 0.5  # 0.9 and 0.6
    annotated = np.zeros_like(predicted)
    annotated[0, 0, 0] = annotated[1, 0, 0] = True  # 0.9 and 0.3
    readings = explain.confidence_readings(probabilities, predicted, annotated)
    assert readings == pytest.approx({"over_predicted_nuclei": 0.75, "over_annotated_nuclei": 0.6})


def test_confidence_readings_of_an_empty_mask_are_nan() -> None:
    probabilities = np.full((1, 2, 2), 0.4)
    readings = explain.confidence_readings(probabilities, probabilities > 0.5, probabilities > 0.3)
    assert np.isnan(readings["over_predicted_nuclei"])
    assert readings["over_annotated_nuclei"] == pytest.approx(0.4)


@pytest.mark.parametrize("mask", [np.ones((1, 3, 2), bool), np.ones((1, 2, 2), float)])
def test_confidence_readings_refuse_a_mask_that_does_not_fit(mask) -> None:
    with pytest.raises(ValueError, match=r"predicted_nuclei: expected a boolean mask of shape \(1, 2, 2\)"):
        explain.confidence_readings(np.full((1, 2, 2), 0.4), mask, np.ones((1, 2, 2), bool))


# --------------------------------------------------------------------------- the package


def test_importing_the_package_imports_no_tensorflow_and_lrp_switches_no_mode() -> None:
    script = textwrap.dedent(
        """
        import sys
        from nucleilib.study import explain
        print("tensorflow imported:", "tensorflow" in sys.modules)
        import tensorflow as tf
        from nucleilib.study.explain import lrp
        print("eager after importing lrp:", tf.executing_eagerly())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tensorflow imported: False" in done.stdout
    assert "eager after importing lrp: True" in done.stdout


def test_the_package_re_exports_every_public_name_of_its_modules() -> None:
    import importlib

    for module in ("windows", "gradcam", "lrp", "measures", "randomise", "figures", "findings"):
        found = importlib.import_module(f"nucleilib.study.explain.{module}")
        own = [
            name
            for name, value in vars(found).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == found.__name__
        ]
        assert own, module
        for name in own:
            assert getattr(explain, name) is getattr(found, name), f"{module}.{name}"
            assert name in explain.__all__, name
    assert explain.grad_cam.__module__ == "nucleilib.study.explain.gradcam"
    assert explain.lrp_maps.__module__ == "nucleilib.study.explain.lrp"


@pytest.mark.parametrize("chapter", ["04_gradcam", "05_lrp"])
def test_the_explanation_chapters_keep_short_code_cells(chapter: str) -> None:
    import jupytext

    notebook = jupytext.read(REPO_ROOT / "notebooks" / f"{chapter}.py")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    lengths = {
        k: len(cell.source.strip().splitlines())
        for k, cell in enumerate(code)
        if "parameters" not in cell.metadata.get("tags", [])
    }
    assert max(lengths.values()) <= 25, lengths
    if chapter == "05_lrp":  # graph mode before anything else builds a model
        first = code[1].source
        assert "tf.compat.v1.disable_eager_execution()" in first and "nucleilib" not in first


# --------------------------------------------------------------------------- tables of many maps


def _stack(*maps: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(m, dtype=float) for m in maps])


def test_measure_maps_stacks_the_metrics_of_every_name_and_reference(square: np.ndarray) -> None:
    inside, flat = square * 1.0, np.ones(square.shape)
    maps = {"deep": _stack(inside, flat), "shallow": _stack(flat, inside)}
    truth, prediction = _stack(square, square) > 0, _stack(~square, square) > 0
    table = explain.measure_maps(
        maps,
        {"truth": truth, "prediction": prediction},
        ["a", "b"],
        name="rule",
        columns={"modality": ["x", "y"], "target": "image"},
        per_name={"deep": {"seconds": 2.0}, "shallow": {"seconds": 3.0}},
    )
    assert list(table.columns[-5:]) == ["rule", "reference", "modality", "target", "seconds"]
    assert table[["rule", "reference", "image_id"]].values.tolist() == [
        ["deep", "truth", "a"],
        ["deep", "truth", "b"],
        ["deep", "prediction", "a"],
        ["deep", "prediction", "b"],
        ["shallow", "truth", "a"],
        ["shallow", "truth", "b"],
        ["shallow", "prediction", "a"],
        ["shallow", "prediction", "b"],
    ]
    assert table["relevance_share"].tolist() == pytest.approx(
        [1.0, 32 / 256, 0.0, 32 / 256, 32 / 256, 1.0, 224 / 256, 1.0]
    )
    assert table["modality"].tolist() == ["x", "y"] * 4 and set(table["target"]) == {"image"}
    assert table["seconds"].tolist() == [2.0] * 4 + [3.0] * 4
    single = explain.explanation_metrics(maps["shallow"], prediction, ["a", "b"])
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(table.iloc[6:][single.columns].reset_index(drop=True), single)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"columns": {"relevance_share": 1.0}}, "'relevance_share' would be written twice"),
        ({"columns": {"layer": "x"}}, "'layer' would be written twice"),
        ({"name": "reference"}, "'reference' would be written twice"),
        ({"per_name": {"m": {"reference": 1}}}, "'reference' would be written twice"),
        ({"maps": {}}, "maps: expected a non-empty mapping"),
        ({"references": {}}, "references: expected a non-empty mapping"),
    ],
)
def test_measure_maps_refuses_columns_it_would_overwrite(square: np.ndarray, kwargs: dict, message: str) -> None:
    arguments = {"maps": {"m": _stack(square)}, "references": {"truth": _stack(square) > 0}} | kwargs
    with pytest.raises(ValueError, match=message):
        explain.measure_maps(arguments.pop("maps"), arguments.pop("references"), ["a"], **arguments)


def test_mean_and_table_of_similarities_have_known_values() -> None:
    x = np.random.default_rng(4).random((3, 6, 6))
    assert explain.mean_similarity(x, np.exp(x)) == pytest.approx(1.0)
    assert explain.mean_similarity(x, _stack(x[0], -x[1], np.zeros((6, 6)))) == pytest.approx(0.0)
    assert explain.mean_similarity(x - 0.5, 0.5 - x, absolute=True) == pytest.approx(1.0)
    table = explain.similarity_table({"a": x, "b": x, "unused": x}, {"b": -x, "a": x**2}, ["i", "j", "k"])
    assert list(table.columns) == ["b", "a"] and list(table.index) == ["i", "j", "k"]
    np.testing.assert_allclose(table.to_numpy(), [[-1.0, 1.0]] * 3)
    with pytest.raises(ValueError, match="must match"):
        explain.mean_similarity(x, x[:2])
    with pytest.raises(ValueError, match="no maps for 'c'"):
        explain.similarity_table({"a": x}, {"c": x}, ["i", "j", "k"])
    with pytest.raises(ValueError, match="must match"):
        explain.similarity_table({"a": x}, {"a": x}, ["i", "j"])


def test_randomised_similarity_has_a_row_per_name_and_image() -> None:
    x = np.arange(32.0).reshape(2, 4, 4) - 16
    table = explain.randomised_similarity({"e": x, "z": x}, {"e": -x, "z": x**3}, ["i", "j"])
    assert list(table.columns) == ["image_id", "rule", "randomised_similarity", "randomised_similarity_abs"]
    assert table[["image_id", "rule"]].values.tolist() == [["i", "e"], ["j", "e"], ["i", "z"], ["j", "z"]]
    assert table["randomised_similarity"].tolist() == pytest.approx([-1.0, -1.0, 1.0, 1.0])
    assert table["randomised_similarity_abs"].tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0])
    empty = explain.randomised_similarity({"e": x}, {}, ["i", "j"], name="layer")
    assert empty.empty and list(empty.columns)[1] == "layer"


def test_pairwise_similarity_is_a_symmetric_matrix_with_a_unit_diagonal() -> None:
    rng = np.random.default_rng(5)
    x, other = rng.random((2, 5, 5)), rng.random((2, 5, 5))
    pairs = explain.pairwise_similarity({"a": x, "b": x**2, "c": -x, "d": other})
    assert list(pairs.index) == list(pairs.columns) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(np.diag(pairs), 1.0)
    np.testing.assert_array_equal(pairs.to_numpy(), pairs.to_numpy().T)
    assert pairs.loc["a", "b"] == pytest.approx(1.0) and pairs.loc["b", "c"] == pytest.approx(-1.0)
    assert pairs.loc["a", "d"] == pytest.approx(explain.mean_similarity(x, other))
    assert explain.pairwise_similarity({"only": x}).values.tolist() == [[1.0]]
    with pytest.raises(ValueError, match="shape"):
        explain.pairwise_similarity({"a": x, "b": x[:1]})


def test_no_positive_share_counts_maps_without_a_positive_value() -> None:
    maps = {
        "heat": _stack(np.zeros((3, 3)), np.eye(3), np.zeros((3, 3)), np.eye(3)),
        "signed": _stack(-np.eye(3), np.eye(3) - 0.5),
    }
    assert explain.no_positive_share(maps).to_dict() == {"heat": 0.5, "signed": 0.5}


def test_paper_readings_are_group_means_and_sums_in_order_of_appearance() -> None:
    import pandas as pd

    table = pd.DataFrame(
        {
            "layer": ["deep", "shallow", "deep"],
            "mean_inside": [0.2, 0.9, 0.4],
            "mean_outside": [0.1, 0.0, np.nan],
            "positive_pixels": [10, 7, 30],
            "positive_regions": [2, 1, 5],
            "image_id": ["a", "a", "b"],
        }
    )
    readings = explain.paper_readings(table, "layer")
    assert list(readings.index) == ["deep", "shallow"] and readings.index.name == "layer"
    assert list(readings.columns) == list(explain.PAPER_READINGS)
    assert readings.loc["deep"].tolist() == pytest.approx([0.3, 0.1, 40, 7])
    assert readings["positive pixels (sum)"].dtype.kind == "i"
    with pytest.raises(ValueError, match="'positive_regions'"):
        explain.paper_readings(table.drop(columns="positive_regions"), "layer")
    with pytest.raises(ValueError, match="no rows"):
        explain.paper_readings(table.iloc[:0], "layer")


def test_largest_nucleus_masks_pick_the_biggest_label_or_none() -> None:
    labels = np.zeros((3, 6, 6), np.int32)
    labels[0, :2, :2] = 4  # 4 pixels
    labels[0, 3:, 3:] = 2  # 9 pixels: the largest
    labels[1, 0, :3] = 7
    labels[1, 5, :3] = 3  # a tie: the lower label wins
    masks = explain.largest_nucleus_masks(labels)
    np.testing.assert_array_equal(masks[0], labels[0] == 2)
    np.testing.assert_array_equal(masks[1], labels[1] == 3)
    assert masks[2] is None
    with pytest.raises(ValueError, match="integer label image"):
        explain.largest_nucleus_masks(labels > 0)


def test_cascade_steps_grow_from_the_output_block_by_block(tiny_model) -> None:
    blocks = explain.layer_blocks(tiny_model)
    steps = explain.cascade_steps(tiny_model)
    assert [stop for stop, _ in steps] == [block for block, _ in blocks]
    for k, (_, names) in enumerate(steps):
        assert names == [name for _, layer_names in blocks[: k + 1] for name in layer_names]
    assert sorted(steps[-1][1]) == sorted(layer.name for layer in tiny_model.layers if layer.trainable_weights)
    chosen = explain.cascade_steps(tiny_model, ["dec2", "no_such_block", "logits"])
    assert [stop for stop, _ in chosen] == ["dec2", "logits"]
    assert chosen[0][1] == dict(steps)["dec2"] and chosen[1][1] == ["logits"]
    assert explain.cascade_steps(tiny_model, []) == []
    with pytest.raises(ValueError, match="not one string"):
        explain.cascade_steps(tiny_model, "logits")


# --------------------------------------------------------------------------- Grad-CAM, the chapter's computations


def test_grad_cam_layers_are_the_single_layer_maps(tiny_model, images: np.ndarray) -> None:
    maps, seconds = explain.grad_cam_layers(tiny_model, images, ["dec1_relu2", "enc1_relu2"])
    assert list(maps) == list(seconds) == ["dec1_relu2", "enc1_relu2"]
    assert all(value >= 0 for value in seconds.values())
    for layer, stack in maps.items():
        np.testing.assert_array_equal(stack, explain.grad_cam(tiny_model, images, layer))
    with pytest.raises(ValueError, match="not one string"):
        explain.grad_cam_layers(tiny_model, images, "dec1_relu2")


def test_nucleus_grad_cams_explain_each_image_with_its_own_region(tiny_model, images: np.ndarray) -> None:
    region = np.zeros((32, 32), bool)
    region[10:16, 12:20] = True
    maps = explain.nucleus_grad_cams(tiny_model, images, ["enc2_relu2", "dec1_relu2"], [None, region])
    for layer, stack in maps.items():
        assert stack.shape == (2, 32, 32) and stack.dtype == np.float32
        assert not stack[0].any()  # not explained
        np.testing.assert_allclose(stack[1], explain.grad_cam(tiny_model, images[1:], layer, region=region)[0])
    with pytest.raises(ValueError, match="one mask"):
        explain.nucleus_grad_cams(tiny_model, images, ["dec1_relu2"], [region])


def test_grad_cam_cascade_repeats_a_manual_cascade(tiny_model, images: np.ndarray) -> None:
    reference = explain.grad_cam(tiny_model, images, "dec1_relu2")
    table = explain.grad_cam_cascade(tiny_model, images, "dec1_relu2", reference, seed=3, stops=["logits", "dec1"])
    assert list(table.columns) == ["randomised down to", "similarity"]
    assert table["randomised down to"].tolist() == ["logits", "dec1"]
    for row, (_, names) in zip(table.itertuples(index=False), explain.cascade_steps(tiny_model, ["logits", "dec1"])):
        scrambled = explain.randomise_weights(tiny_model, names, seed=3)
        expected = explain.mean_similarity(reference, explain.grad_cam(scrambled, images, "dec1_relu2"))
        assert row.similarity == pytest.approx(expected, abs=1e-9)
    assert explain.grad_cam_cascade(tiny_model, images, "dec1_relu2", reference, stops=[]).empty


# --------------------------------------------------------------------------- LRP, the chapter's computations


def test_rule_maps_report_seconds_conservation_and_measure_columns() -> None:
    maps = {
        "lrp.z": _stack(np.full((2, 2), 1.0), np.full((2, 2), 2.0)),
        "lrp.epsilon": _stack(np.ones((2, 2)), np.ones((2, 2))),
    }
    scores = {"lrp.z": np.array([4.0, 4.0]), "lrp.epsilon": np.array([8.0, 2.0])}
    run = explain.RuleMaps(maps, scores, {"lrp.z": 10.0, "lrp.epsilon": 4.0})
    assert run.rules == ["lrp.z", "lrp.epsilon"]
    timing = run.timing()
    assert timing.index.name == "rule" and list(timing.index) == ["lrp.z", "lrp.epsilon"]
    assert timing.to_dict("list") == {"seconds": [10.0, 4.0], "seconds per image": [5.0, 2.0]}
    assert run.conservation().to_dict() == pytest.approx({"lrp.z": 1.5, "lrp.epsilon": 1.25})
    columns = run.columns("lrp.z")
    assert columns["seconds"] == 10.0
    np.testing.assert_array_equal(columns["relevance_sum"], [4.0, 8.0])
    np.testing.assert_array_equal(columns["explained_logit"], [4.0, 4.0])


# --------------------------------------------------------------------------- findings


def _by_layer():
    import pandas as pd

    return pd.DataFrame(
        {
            "images": [2, 2, 2],
            "relevance_share": [0.2, 0.6, 0.4],
            "area_share": [0.1, 0.1, 0.1],
            "enrichment": [2.0, 6.0, 4.0],
            "pointing_game": [0.5, 1.0, 0.0],
            "correlation": [0.1, 0.5, 0.3],
            "boundary_enrichment": [3.0, 1.0, 2.0],
        },
        index=pd.Index(["enc1", "dec3", "dec1"], name="layer"),
    )


def test_gradcam_findings_name_the_best_and_worst_layers() -> None:
    import pandas as pd

    on_truth = pd.DataFrame({"area_share": [0.1, 0.3], "boundary_area_share": [0.2, 0.4]})
    found = explain.gradcam_findings(_by_layer(), on_truth)
    assert list(found)[:5] == ["share_enc1", "enrich_enc1", "pointing_enc1", "corr_enc1", "boundary_enrich_enc1"]
    assert found["share_dec1"] == 0.4 and found["boundary_enrich_dec3"] == 1.0
    assert found["area_share"] == pytest.approx(0.2) and found["boundary_area_share"] == pytest.approx(0.3)
    assert (
        found["best_layer"],
        found["best_enrichment"],
        found["best_share"],
        found["best_pointing"],
        found["best_corr"],
        found["best_boundary_enrichment"],
    ) == ("dec3", 6.0, 0.6, 1.0, 0.5, 1.0)
    assert (found["worst_layer"], found["worst_enrichment"]) == ("enc1", 2.0)
    assert (found["boundary_enrich_max_layer"], found["boundary_enrich_max"]) == ("enc1", 3.0)
    assert (found["boundary_enrich_min_layer"], found["boundary_enrich_min"]) == ("dec3", 1.0)
    assert all(isinstance(value, (str, float)) for value in found.values())
    with pytest.raises(ValueError, match="boundary_enrichment"):
        explain.gradcam_findings(_by_layer().drop(columns="boundary_enrichment"), on_truth)


def test_nucleus_randomisation_and_cascade_findings() -> None:
    import pandas as pd

    assert explain.nucleus_findings(_by_layer()) == {
        "nucleus_best_layer": "dec3",
        "nucleus_best_pointing": 1.0,
        "nucleus_best_enrichment": 6.0,
    }
    not_run = explain.nucleus_findings(None)
    assert not_run["nucleus_best_layer"] == "not run" and np.isnan(not_run["nucleus_best_pointing"])
    found = explain.randomisation_findings(pd.Series({"enc1": 0.1, "dec1": 0.7, "dec3": 0.0}))
    assert found == {
        "rand_sim_max": 0.7,
        "rand_sim_max_layer": "dec1",
        "rand_sim_min": 0.0,
        "rand_sim_enc1": 0.1,
        "rand_sim_dec1": 0.7,
        "rand_sim_dec3": 0.0,
    }
    with pytest.raises(ValueError, match="non-empty Series"):
        explain.randomisation_findings(pd.Series(dtype=float))
    table = pd.DataFrame({"randomised down to": ["logits", "dec1", "all"], "similarity |R|": [0.9, 0.5, 0.2]})
    assert explain.cascade_findings(table, "lrp.z", key="cascade_rule", column="similarity |R|") == {
        "cascade_rule": "lrp.z",
        "cascade_first": 0.9,
        "cascade_last": 0.2,
    }
    for empty in (None, pd.DataFrame(), table.iloc[:0]):
        found = explain.cascade_findings(empty, "dec1_relu2")
        assert (
            found["cascade_layer"] == "not run" and np.isnan(found["cascade_first"]) and np.isnan(found["cascade_last"])
        )


def test_lrp_timing_pair_and_sanity_findings() -> None:
    import pandas as pd

    by_rule = _by_layer().rename_axis("rule")
    on_truth = pd.DataFrame({"area_share": [0.25, 0.75]})
    assert explain.lrp_findings(by_rule, on_truth) == {
        "area_share": 0.5,
        "best_rule": "dec3",
        "best_share": 0.6,
        "best_enrichment": 6.0,
        "best_pointing": 1.0,
        "best_corr": 0.5,
        "enrichment_min": 2.0,
        "enrichment_max": 6.0,
    }
    timing = pd.DataFrame({"seconds": [40.0, 10.0, 90.0]}, index=["lrp.z", "lrp.epsilon", "lrp.alpha_1_beta_0"])
    found = explain.timing_findings(timing)
    assert found["seconds_lrp.z"] == 40.0 and list(found)[:3] == [f"seconds_{rule}" for rule in timing.index]
    assert (found["fastest_rule"], found["fastest_seconds"]) == ("lrp.epsilon", 10.0)
    assert (found["slowest_rule"], found["slowest_seconds"]) == ("lrp.alpha_1_beta_0", 90.0)
    names = ["a", "b", "c"]
    pairs = pd.DataFrame([[1.0, 0.3, 0.8], [0.3, 1.0, 0.8], [0.8, 0.8, 1.0]], index=names, columns=names)
    assert explain.pair_findings(pairs) == {
        "closest_pair": "a and c",
        "closest_similarity": 0.8,
        "farthest_similarity": 0.3,
    }
    one = explain.pair_findings(pd.DataFrame([[1.0]], index=["a"], columns=["a"]))
    assert one["closest_pair"] == "not compared (one rule)" and np.isnan(one["closest_similarity"])
    with pytest.raises(ValueError, match="square"):
        explain.pair_findings(pairs.iloc[:2])
    summary = pd.DataFrame({"randomised_similarity_abs": [0.4, 0.6]}, index=["lrp.epsilon", "lrp.z"])
    assert explain.sanity_findings(summary) == {"rand_sim_abs_max": 0.6, "rand_sim_abs_min": 0.4}
    assert all(np.isnan(v) for v in explain.sanity_findings(summary.iloc[:0]).values())


def test_paper_findings_are_the_ranges_of_the_readings() -> None:
    import pandas as pd

    readings = pd.DataFrame(
        {
            "mean relevance in nuclei": [0.3, 0.1],
            "mean relevance elsewhere": [0.0, 0.2],
            "positive pixels (sum)": [300, 50],
            "positive regions (sum)": [4, 9],
        }
    )
    found = explain.paper_findings(readings)
    assert found == {
        "relevance_in_nuclei_min": 0.1,
        "relevance_in_nuclei_max": 0.3,
        "positive_pixels_min": 50,
        "positive_pixels_max": 300,
        "positive_regions_min": 4,
        "positive_regions_max": 9,
    }
    assert isinstance(found["positive_pixels_max"], int)


def test_glue_findings_glues_each_number_without_displaying_it(monkeypatch) -> None:
    import myst_nb

    glued = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.append((name, value, display)))
    assert explain.glue_findings({"best_layer": "dec1", "best_share": 0.5}) is None
    assert glued == [("best_layer", "dec1", False), ("best_share", 0.5, False)]
    with pytest.raises(ValueError, match="dict"):
        explain.glue_findings([("best_layer", "dec1")])
