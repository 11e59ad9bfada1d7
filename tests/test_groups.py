"""Imaging groups and folds that hold whole groups out."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from nucleilib.study import groups as grp
from nucleilib.study.groups import check_folds, group_table, grouped_folds, imaging_groups


def two_groups_in_two_folds():
    """Two imaging groups of 20 stand-in samples each, one per fold: (groups, folds, samples)."""
    groups = pd.Series(["a"] * 20 + ["b"] * 20, index=[f"i{k:02d}" for k in range(40)])
    return groups, grp.grouped_folds(groups, 2), {i: SimpleNamespace(image_id=i) for i in groups.index}


def fold_result(tmp_path, name, *, separation="borders", make_folder=False):
    """What a stand-in ``train`` returns for one fold."""
    if make_folder:
        (tmp_path / name).mkdir(exist_ok=True)
    config = SimpleNamespace(model=SimpleNamespace(separation=separation))
    return SimpleNamespace(model=None, config=config, folder=tmp_path / name)


def _manifest() -> pd.DataFrame:
    rows = []
    rows += [("fl256", "fluorescence", 256, 256)] * 40
    rows += [("fl520", "fluorescence", 520, 696)] * 35
    rows += [("fl512", "fluorescence", 512, 640)] * 5
    rows += [("fl603", "fluorescence", 603, 1272)] * 3
    rows += [("he", "stained tissue", 256, 320)] * 31
    rows += [("bf", "brightfield", 1024, 1024)] * 16
    return pd.DataFrame(
        [
            {"image_id": f"{kind}-{k:03d}", "modality": m, "height": h, "width": w}
            for k, (kind, m, h, w) in enumerate(rows)
        ]
    )


def test_groups_by_modality_and_size_pool_rare_sizes():
    groups = imaging_groups(_manifest())
    table = group_table(groups).set_index("group")["images"].to_dict()
    assert table == {
        "fluorescence 256x256": 40,
        "fluorescence 520x696": 35,
        "stained tissue 256x320": 31,
        "brightfield": 16,
        "fluorescence, other sizes": 8,
    }


@pytest.mark.parametrize("n_folds", [None, 2, 3, 5])
def test_no_group_on_both_sides_and_every_image_tested_once(n_folds):
    groups = imaging_groups(_manifest())
    folds = grouped_folds(groups, n_folds)
    assert len(folds) == (5 if n_folds is None else n_folds)
    check_folds(folds, groups)
    for fold in folds:
        assert not set(groups[fold["train"]]) & set(groups[fold["test"]])
        assert set(fold["train"]).isdisjoint(fold["test"])


def test_balanced_folds_deal_largest_group_first():
    groups = imaging_groups(_manifest())
    sizes = sorted(len(f["test"]) for f in grouped_folds(groups, 2))
    assert sizes == [40 + 16 + 8, 35 + 31]


def test_check_folds_catches_a_leak():
    groups = imaging_groups(_manifest())
    folds = grouped_folds(groups, 2)
    leaked = [dict(folds[0], train=folds[0]["train"] + folds[0]["test"][:1]), folds[1]]
    with pytest.raises(ValueError, match="both sides"):
        check_folds(leaked, groups)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="lacks column"):
        imaging_groups(pd.DataFrame({"image_id": ["a"]}))
    with pytest.raises(ValueError, match="more than the 5 groups"):
        grouped_folds(imaging_groups(_manifest()), 6)


def test_grouped_evaluation_trains_per_fold_without_its_groups(tmp_path):
    from nucleilib.study.groups import group_summary, grouped_evaluation

    groups = imaging_groups(_manifest())
    folds = grouped_folds(groups, 3)
    samples = {i: SimpleNamespace(image_id=i) for i in groups.index}
    seen = []

    def fake_train(budget, fit, val, cache_root, *, name, verbose):
        seen.append((name, {s.image_id for s in fit}, {s.image_id for s in val}))
        config = SimpleNamespace(model=SimpleNamespace(separation="borders"))
        return SimpleNamespace(model=None, config=config, folder=tmp_path / name)

    def fake_evaluate(model, config, test, methods):
        ids = [s.image_id for s in test]
        return pd.DataFrame({"image_id": ids, "dsb_score": [0.5] * len(ids), "ap50": 0.6, "iou": 0.7}), {}

    per_image = grouped_evaluation(samples, groups, folds, None, tmp_path, train=fake_train, evaluate=fake_evaluate)
    assert sorted(per_image["image_id"]) == sorted(groups.index)
    for (_name, fit, val), fold in zip(seen, folds):
        assert not (fit | val) & set(fold["test"])
        assert not fit & val and len(val) == 9
    summary = group_summary(per_image)
    assert summary.loc["mean over groups", "images"] == len(groups)
    assert summary.loc["brightfield", "DSB"] == 0.5


def test_held_out_against_random_lines_up_groups():
    from nucleilib.study.groups import held_out_against_random, random_split_by_group

    groups = pd.Series({"a": "g1", "b": "g1", "c": "g2", "d": "g3"})
    held_out = pd.DataFrame(
        {"images": [2, 1, 1, 4, 4], "DSB": [0.2, 0.1, 0.05, 0.117, 0.1375], "IoU": [0.5, 0.4, 0.3, 0.4, 0.425]},
        index=["g1", "g2", "g3", "mean over groups", "mean over images"],
    )
    per_image = pd.DataFrame(
        {
            "image_id": ["a", "c", "x"],
            "model": ["U-Net", "U-Net", "Other"],
            "dsb_score": [0.6, 0.7, 0.0],
            "ap50": 0.5,
            "iou": [0.8, 0.9, 0.0],
        }
    )
    table = held_out_against_random(held_out, random_split_by_group(per_image, groups))
    assert table.index.tolist() == ["g1", "g2", "g3"]
    assert table.loc["g1", "DSB, random split"] == 0.6 and table.loc["g1", "DSB, group held out"] == 0.2
    assert table.loc["g3", "random-split test images"] == 0 and pd.isna(table.loc["g3", "DSB, random split"])
    with pytest.raises(ValueError, match="no per-image rows"):
        random_split_by_group(per_image, groups, model="ResUNet")


def test_levers_change_only_what_they_name_and_table_per_group(tmp_path):
    from nucleilib.study import levers

    budget = grp.comparison_budget()
    assert levers.lever_config(budget, "baseline") == budget
    scale = levers.lever_config(budget, "scale")
    assert scale.model.diameter == levers.CANONICAL_DIAMETER and scale.crop == budget.crop
    both = levers.lever_config(budget, "scale+modality")
    assert both.colour and both.balance == "modality" and both.scale_jitter == levers.SCALE_JITTER
    with pytest.raises(ValueError, match="unknown lever"):
        levers.lever_config(budget, "bigger")


def test_grouped_evaluation_scores_through_a_segmenter_with_the_options(tmp_path, monkeypatch):
    from nucleilib.models import ModelConfig
    from nucleilib.segmenter import Segmenter

    groups, folds, samples = two_groups_in_two_folds()
    got = []

    def fake_train(budget, fit, val, cache_root, *, name, verbose):
        return SimpleNamespace(model=None, config=SimpleNamespace(model=ModelConfig()), folder=tmp_path / name)

    def fake_evaluate(model, config, test, methods):
        got.append((model, config, methods))
        ids = [s.image_id for s in test]
        return pd.DataFrame({"image_id": ids, "dsb_score": 0.5, "ap50": 0.6, "iou": 0.7}), {}

    monkeypatch.setattr(
        Segmenter, "from_keras", classmethod(lambda cls, model, config, **options: cls(lambda x: x, config, **options))
    )
    grp.grouped_evaluation(
        samples,
        groups,
        folds,
        None,
        tmp_path,
        methods=["components"],
        segmenter_options={"tta": 8, "model_diameter": 20.0, "model_colour_input": "hematoxylin"},
        train=fake_train,
        evaluate=fake_evaluate,
    )
    for model, config, methods in got:
        assert isinstance(model, Segmenter) and config is None and methods == ["components"]
        assert model.tta == 8 and model.config.diameter == 20.0 and model.diameter == "auto"
        assert model.config.colour_input == "hematoxylin"


def test_fold_scores_are_cached_beside_the_model_and_rescored_on_request(tmp_path, monkeypatch):
    groups, folds, samples = two_groups_in_two_folds()
    calls = []

    def fake_train(budget, fit, val, cache_root, *, name, verbose):
        return fold_result(tmp_path, name, make_folder=True)

    def fake_evaluate(model, config, test, methods):
        calls.append(methods)
        ids = [s.image_id for s in test]
        return pd.DataFrame({"image_id": ids, "dsb_score": 0.1 * len(calls), "ap50": 0.6, "iou": 0.7}), {}

    def run(**kwargs):
        return grp.grouped_evaluation(
            samples, groups, folds, None, tmp_path, train=fake_train, evaluate=fake_evaluate, **kwargs
        )

    first = run()
    assert len(calls) == 2 and len(list(tmp_path.glob("*/scores-*.csv"))) == 2
    pd.testing.assert_frame_equal(run(), first)
    assert len(calls) == 2
    run(methods=["components"])  # other settings: scored, and cached apart
    assert len(calls) == 4 and len(list(tmp_path.glob("*/scores-*.csv"))) == 4
    assert not run(rescore=True)["dsb_score"].equals(first["dsb_score"]) and len(calls) == 6
    monkeypatch.setenv("NUCLEI_RESCORE", "1")  # what nuclei study --rescore sets for the kernels
    run()
    assert len(calls) == 8
    run(rescore=False)  # an explicit choice wins over the environment
    assert len(calls) == 8


def test_only_some_folds_are_trained_and_scored(tmp_path):
    groups, folds, samples = two_groups_in_two_folds()
    names = []

    def fake_train(budget, fit, val, cache_root, *, name, verbose):
        names.append(name)
        return fold_result(tmp_path, name)

    def fake_evaluate(model, config, test, methods):
        ids = [s.image_id for s in test]
        return pd.DataFrame({"image_id": ids, "dsb_score": 0.5, "ap50": 0.6, "iou": 0.7}), {}

    rows = grp.grouped_evaluation(
        samples, groups, folds, None, tmp_path, only=[1], train=fake_train, evaluate=fake_evaluate
    )
    assert names == ["grouped-fold1"] and sorted(rows["image_id"]) == folds[1]["test"]


def test_every_reference_diameter_has_its_tta_options_and_the_profiles_name_known_settings():
    from nucleilib.study import levers, profiles

    for reference in levers.REFERENCE_DIAMETERS:
        name = levers.rescaled(reference)
        assert levers.INFERENCE_OPTIONS[name] == {"model_diameter": reference, "diameter": "auto"}
        assert levers.INFERENCE_OPTIONS[levers.with_tta(name, 8)]["tta"] == 8
        assert levers.setting_diameter(levers.with_tta(name, 4)) == reference
    with pytest.raises(ValueError, match="no test-time augmentation"):
        levers.with_tta("tta8", 8)
    for colour_input in levers.INFERENCE_COLOUR_INPUTS:
        option = levers.INFERENCE_OPTIONS[levers.with_colour_input(levers.rescaled(24.0), colour_input)]
        assert option == {**levers.INFERENCE_OPTIONS[levers.rescaled(24.0)], "model_colour_input": colour_input}
        with_views = levers.with_tta(levers.with_colour_input(levers.rescaled(24.0), colour_input), 8)
        assert levers.INFERENCE_OPTIONS[with_views] == {**option, "tta": 8}
        assert levers.setting_diameter(with_views) == 24.0
    with pytest.raises(ValueError, match="no colour input"):
        levers.with_colour_input("tta8", "grey")
    for profile in profiles.PROFILES:
        params = profiles.notebook_parameters("07_unseen", profile)
        for lever, inference in params.get("inference_runs", []):
            assert lever in levers.TRAINING_LEVERS and inference in levers.INFERENCE_OPTIONS
        assert set(params.get("levers", [])) <= set(levers.TRAINING_LEVERS)
        assert profiles.notebook_parameters("02_unet", profile)["ship_diameter"] in levers.REFERENCE_DIAMETERS
    keys = [
        levers.glue_key(lever, inference)
        for lever in levers.TRAINING_LEVERS
        for inference in ["plain", *map(levers.rescaled, levers.REFERENCE_DIAMETERS)]
    ]
    assert len(set(keys)) == len(keys)


def test_the_shipped_model_runs_the_chosen_setting_only_as_a_baseline_option_of_its_diameter():
    from nucleilib.models import ModelConfig
    from nucleilib.study import levers

    best = pd.Series({"lever": "baseline", "inference": "rescaled at inference, 24 px"})
    assert levers.matches_shipped(best, ModelConfig(diameter=24.0))
    assert not levers.matches_shipped(best, ModelConfig(diameter=20.0))
    assert not levers.matches_shipped(best, ModelConfig())
    assert not levers.matches_shipped(best.replace("baseline", "scale"), ModelConfig(diameter=24.0))
    assert not levers.matches_shipped(best, ModelConfig(diameter=24.0, colour_input="hematoxylin"))
    stained = pd.Series({"lever": "baseline", "inference": "rescaled at inference, 24 px, hematoxylin input"})
    assert levers.matches_shipped(stained, ModelConfig(diameter=24.0, colour_input="hematoxylin"))
    assert not levers.matches_shipped(stained, ModelConfig(diameter=24.0))


def test_the_grouped_estimate_goes_into_the_card_and_keeps_the_rest(tmp_path):
    import json

    from nucleilib.study import levers

    change = pd.DataFrame(
        {"images": [2, 1, 3], "DSB after": [0.4, 0.6, 0.5], "IoU after": [0.7, 0.9, 0.8]},
        index=["g1", "g2", "mean over groups"],
    )
    best = pd.Series({"lever": "baseline", "inference": "rescaled at inference, 24 px"})
    estimate = levers.card_estimate(change, best, 2)
    assert estimate["mean_over_groups"] == {"images": 3, "dsb_score": 0.5, "iou": 0.8}
    assert list(estimate["per_group"]) == ["g1", "g2"]
    with pytest.raises(FileNotFoundError, match="no model card"):
        levers.record_card_estimate(tmp_path, estimate)
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(ValueError, match="card.json: the model card is not valid JSON"):
        levers.record_card_estimate(tmp_path, estimate)
    (tmp_path / "card.json").write_text(json.dumps({"name": "m", "grouped_estimate": "old"}))
    levers.record_card_estimate(tmp_path, estimate)
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["name"] == "m" and card["grouped_estimate"]["setting"]["inference"] == best["inference"]


def test_unseen_facts_read_the_before_after_table_and_name_a_missing_one(tmp_path):
    from nucleilib.study import levers

    with pytest.raises(FileNotFoundError, match="levers-before-after.csv: run the unseen-conditions chapter"):
        levers.unseen_facts(tmp_path)
    pd.DataFrame(
        {
            "images": [2, 1, 3],
            "DSB before": [0.2, 0.1, 0.15],
            "DSB after": [0.5, 0.2, 0.35],
            "DSB change": [0.3, 0.1, 0.2],
        },
        index=pd.Index(["g1", "g2", "mean over groups"], name="group"),
    ).to_csv(tmp_path / "levers-before-after.csv")
    facts = levers.unseen_facts(tmp_path)
    assert facts["unseen_dsb_gain"] == pytest.approx(0.2) and facts["unseen_weakest"] == "g2"
    assert (facts["unseen_below_030"], facts["unseen_groups"]) == (1, 2)
