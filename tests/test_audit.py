"""The claims audit: its verdict rules, its claims as data and the audit of a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nucleilib.study import audit, claims


@pytest.mark.parametrize(
    ("claimed", "measured", "tolerance", "interval", "expected"),
    [
        (0.882, 0.887, 0.02, None, audit.REPRODUCED),
        (0.882, 0.85, 0.02, None, audit.NOT_REPRODUCED),
        (0.85, 0.80, 0.0, (0.78, 0.86), audit.REPRODUCED),
        (0.88, 0.80, 0.0, (0.78, 0.86), audit.NOT_REPRODUCED),
        (0.87, 0.80, 0.02, (0.78, 0.86), audit.REPRODUCED),
    ],
)
def test_point_verdict(claimed, measured, tolerance, interval, expected) -> None:
    assert audit.point_verdict(claimed, measured, tolerance=tolerance, interval=interval) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"claimed": float("nan"), "measured": 0.5, "tolerance": 0.1}, "claimed must be a finite"),
        ({"claimed": 0.5, "measured": 0.5, "tolerance": -1}, "tolerance must be >= 0"),
        ({"claimed": 0.5, "measured": 0.5, "tolerance": 0, "interval": (0.6, 0.4)}, "low <= high"),
    ],
)
def test_point_verdict_refuses_bad_input(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        audit.point_verdict(**kwargs)


def test_range_verdict_threshold_and_validation() -> None:
    assert audit.range_verdict(0.9) == audit.REPRODUCED
    assert audit.range_verdict(0.89) == audit.NOT_REPRODUCED
    assert audit.range_verdict(0.5, min_share=0.5) == audit.REPRODUCED
    with pytest.raises(ValueError, match=r"share_inside must be in \[0, 1\]"):
        audit.range_verdict(1.5)


def test_mean_sd_verdict() -> None:
    assert audit.mean_sd_verdict(10, 1.58, [8, 9, 10, 11, 12]) == audit.REPRODUCED
    assert audit.mean_sd_verdict(10, 5, [8, 9, 10, 11, 12]) == audit.NOT_REPRODUCED
    assert audit.mean_sd_verdict(20, 1.58, [8, 9, 10, 11, 12]) == audit.NOT_REPRODUCED
    with pytest.raises(ValueError, match="at least two"):
        audit.mean_sd_verdict(1, 1, [1])


def test_audit_row_refuses_an_unknown_verdict() -> None:
    row = audit.AuditRow("EDA", "x", "1", "2", audit.UNDEFINED, "rule", "01_eda.html")
    assert row.as_dict()["verdict"] == audit.UNDEFINED
    with pytest.raises(ValueError, match="unknown verdict 'plausible'"):
        audit.AuditRow("EDA", "x", "1", "2", "plausible", "rule", "01_eda.html")


@pytest.mark.parametrize(
    ("curve", "by_epoch", "final_epoch", "expected"),
    [
        ([0.5, 0.8, 0.9, 0.9], 2, 4, 0.75),  # rising (IoU): 0.3 of 0.4
        ([1.0, 0.4, 0.2], 2, 3, 0.75),  # falling (loss): 0.6 of 0.8
        ([0.5, 0.6, 0.9, 0.8], 3, 4, 4 / 3),  # overshoot before the kept epoch
        ([0.5, 0.4, 0.9], 2, 3, -0.25),  # worse than epoch 1 at first
        ([0.5, 0.7], 2, 2, 1.0),
    ],
)
def test_progress_share(curve, by_epoch, final_epoch, expected) -> None:
    assert audit.progress_share(curve, by_epoch=by_epoch, final_epoch=final_epoch) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"by_epoch": 5, "final_epoch": 3}, "by_epoch"),
        ({"by_epoch": 2, "final_epoch": 9}, "number of epochs"),
        ({"by_epoch": 0, "final_epoch": 2}, "by_epoch"),
    ],
)
def test_progress_share_refuses_bad_epochs(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        audit.progress_share([0.1, 0.2, 0.3], **kwargs)


def test_progress_share_refuses_a_flat_curve() -> None:
    with pytest.raises(ValueError, match="does not change"):
        audit.progress_share([0.3, 0.5, 0.3], by_epoch=2, final_epoch=3)


def test_early_progress_verdict() -> None:
    assert audit.early_progress_verdict([0.5, 0.9]) == audit.REPRODUCED
    assert audit.early_progress_verdict([0.49, 0.9]) == audit.NOT_REPRODUCED
    assert audit.early_progress_verdict([0.6], min_share=0.7) == audit.NOT_REPRODUCED
    with pytest.raises(ValueError, match="no progress shares"):
        audit.early_progress_verdict([])


@pytest.mark.parametrize(
    ("claimed", "measured", "expected"),
    [
        ((0.0753, 0.0717), (0.81, 0.68), audit.REPRODUCED),
        ((0.0753, 0.0717), (0.60, 0.70), audit.NOT_REPRODUCED),
        ((0.0753, 0.0717), (0.70, 0.70), audit.NOT_REPRODUCED),
        ((0.5, 0.5), (0.7, 0.7), audit.REPRODUCED),
        ((0.1, 0.2), (3.0, 4.0), audit.REPRODUCED),
    ],
)
def test_order_verdict(claimed, measured, expected) -> None:
    assert audit.order_verdict(claimed, measured) == expected


def test_majority_verdict() -> None:
    assert audit.majority_verdict([True, True, False]) == audit.REPRODUCED
    assert audit.majority_verdict([True, False]) == audit.NOT_REPRODUCED
    assert audit.majority_verdict([True, False], min_share=0.4) == audit.REPRODUCED
    with pytest.raises(ValueError, match="no settings"):
        audit.majority_verdict([])


def test_spread_verdict() -> None:
    assert audit.spread_verdict(0.031, 0.006) == audit.REPRODUCED  # under the floor
    assert audit.spread_verdict(0.07, 0.02) == audit.NOT_REPRODUCED
    assert audit.spread_verdict(0.07, 0.08) == audit.REPRODUCED  # no wider than the seeds
    assert audit.spread_verdict(0.05, 0.0) == audit.REPRODUCED
    with pytest.raises(ValueError, match=">= 0"):
        audit.spread_verdict(-0.1, 0.0)


def test_apply_rule_by_name() -> None:
    assert audit.apply_rule("range", share_inside=0.95) == audit.REPRODUCED
    assert audit.apply_rule("undefined") == audit.UNDEFINED
    assert audit.apply_rule("not_testable") == audit.NOT_TESTABLE
    assert set(audit.RULES.values()) >= {audit.point_verdict, audit.majority_verdict, audit.spread_verdict}
    with pytest.raises(ValueError, match="unknown verdict rule 'plausible'"):
        audit.apply_rule("plausible")


# --------------------------------------------------------------------------- the claims as data


def test_the_claim_rows_are_well_formed() -> None:
    claims.check_claims()
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids)) == 41
    assert {c.verdict_rule for c in claims.CLAIMS} <= set(audit.RULES)
    assert {c.section for c in claims.CLAIMS} == {
        "Data",
        "EDA",
        "Model",
        "Training",
        "Table 1",
        "Table 2",
        "Summary",
        "Explanations",
        "Speed",
    }
    for claim in claims.CLAIMS:
        assert claim.paper and claim.measured and claim.rule, claim.id
        assert claim.link.split("#")[0].endswith(".html"), claim.id
        fixed = claim.verdict_rule in ("undefined", "not_testable")
        assert bool(claim.args) != fixed, f"{claim.id}: a judged claim needs arguments, a fixed verdict none"
    table = claims.claims_table()
    assert table.index.tolist() == ids and table.loc["loss-order", "verdict_rule"] == "order"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"verdict_rule": "plausible"}, "unknown verdict rule 'plausible'"),
        ({"args": {"claimed": 1}}, "do not fit rule 'point'"),
        ({"args": {"claimed": 1, "measured": "@x", "tolerance": 0, "slack": 1}}, "do not fit rule 'point'"),
        ({"id": ""}, "must not be empty"),
        ({"measured": "{unclosed"}, "malformed template '{unclosed'"),
    ],
)
def test_a_malformed_claim_is_refused(changes, message) -> None:
    values = {
        "id": "x",
        "section": "EDA",
        "claim": "c",
        "paper": "1",
        "verdict_rule": "point",
        "args": {"claimed": 1, "measured": "@x", "tolerance": 0},
        "measured": "{x}",
        "rule": "r",
        "link": "01_eda.html",
    } | changes
    with pytest.raises(ValueError, match=message):
        claims.Claim(**values)


def test_repeated_claim_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="repeated claim id"):
        claims.audit_table({}, claims=[claims.CLAIMS[0], claims.CLAIMS[0]])


def test_a_claim_names_the_measurement_it_lacks() -> None:
    with pytest.raises(claims.ArtefactError, match="claim 'data-images': no measurement 'n_images'"):
        claims.audit_table({}, claims=claims.CLAIMS[:1])


# --------------------------------------------------------------------------- a synthetic run folder


def _csv(out: Path, name: str, rows: list[dict]) -> None:
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / name, index=False)


def _json(out: Path, name: str, values: dict) -> None:
    (out / name).parent.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(json.dumps(values))


def write_run(out: Path) -> Path:
    """The artefacts of a small made-up run, with known verdicts (see test_audit_of_a_synthetic_run)."""
    _json(
        out,
        "eda-claims.json",
        {
            "n_images": 740.0,
            "sizes_share_within_256_1024": 0.95,
            "count_mean": 71.0,
            "count_sd": 9.0,
            "area_p5": 10.0,
            "area_p95": 400.0,
            "area_share_in_paper": 0.5,
            "circularity_p5": 0.62,
            "circularity_p95": 0.89,
            "circularity_share_in_paper": 0.92,
            "contrast_p5": 0.1,
            "contrast_p95": 0.3,
            "contrast_share_in_paper": 0.1,
            "intensity_p5": 0.25,
            "intensity_p95": 0.75,
            "intensity_share_in_paper": 0.9,
            "touching_any_share": 0.5,
            "touching_10_share": 0.3,
        },
    )
    _csv(out, "eda-images.csv", [{"image_id": f"i{n}", "nuclei": n} for n in (62, 71, 80)])
    run = "models/unet-original-0123"
    _json(
        out,
        f"{run}/train-config.json",
        {"best_epoch": 12, "epochs_run": 12, "seconds": 600.0, "config": {"steps_per_epoch": 10, "batch_size": 2}},
    )
    history = [
        {
            "epoch": e,
            "loss": 1.0,
            "accuracy": 0.9,
            "iou": 0.7,
            "val_loss": 1.0 - 0.05 * (e - 1),
            "val_accuracy": 0.5 if e < 10 else (0.6 if e == 10 else 0.9),
            "val_iou": 0.8,
        }
        for e in range(1, 13)
    ]
    history[-1] |= {"loss": 0.5, "accuracy": 0.97, "iou": 0.80, "val_iou": 0.88}  # the kept epoch, 12
    _csv(out, f"{run}/history.csv", history)
    metrics = ("accuracy", "precision", "recall", "IoU", "DSB score", "parameters")
    table1 = {
        "U-Net": (0.97, 0.9, 0.9, 0.85, 0.50, 2_000_000),
        "ResUNet": (0.946, 0.886, 0.817, 0.853, 0.45, 4e6),
        "DeepLabV3+": (0.80, 0.887, 0.891, 0.805, 0.40, 6e6),
        "U-Net, chapter 2 (10 min)": (0.975, 0.945, 0.951, 0.882, 0.55, 2_033_362),
        "Classical": (0.9, 0.7, 0.8, 0.6, 0.30, 0),
    }
    _csv(out, "comparison-table1.csv", [{"model": m, **dict(zip(metrics, v))} for m, v in table1.items()])
    # Three seeds per trained network, spread +/- 0.01 around Table 1's mean.
    _csv(
        out,
        "comparison-seeds.csv",
        [
            {"model": m, "seed": seed, **{k: value + shift for k, value in zip(metrics[:5], v)}}
            for m, v in list(table1.items())[:3]
            for seed, shift in [(42, 0.0), (1, -0.01), (2, 0.01)]
        ],
    )
    _csv(
        out,
        "comparison-table2.csv",
        [
            {"split": split, "seed": seed, "IoU": iou, "IoU 95% CI": ci}
            for split, seed, iou, ci in [
                ("original", 42, 0.87, "0.850-0.900"),
                ("80-10-10", 42, 0.80, "0.780-0.820"),
                ("70-20-10", 42, 0.83, "0.800-0.860"),
                ("original", 1, 0.86, "0.840-0.880"),
                ("original", 2, 0.88, "0.860-0.900"),
            ]
        ],
    )
    _csv(
        out,
        "unet-test-summary.csv",
        [{"metric": "iou", "per-image mean": 0.85}, {"metric": "dsb_score", "per-image mean": 0.55}],
    )
    shares = {"relevance_share": 0.6, "area_share": 0.2, "pointing_game": 1.0, "correlation": 0.3}
    _csv(
        out,
        "explain-lrp.csv",
        [
            {
                "image_id": image,
                "rule": rule,
                "reference": reference,
                "mean_inside": inside,
                "positive_regions": 10,
                "positive_pixels": 100,
                **shares,
            }
            for image, rule, reference, inside in [
                ("a", "lrp.z", "truth", 0.1),
                ("b", "lrp.z", "truth", 0.3),
                ("a", "lrp.epsilon", "truth", -0.1),
                ("a", "lrp.epsilon", "prediction", 9.0),
            ]
        ],
    )
    cam = {"relevance_share": 0.6, "area_share": 0.2, "boundary_share": 0.5, "boundary_area_share": 0.1}
    _csv(
        out,
        "explain-gradcam.csv",
        [
            {
                "image_id": "a",
                "layer": layer,
                "target": "image",
                "reference": "truth",
                "pointing_game": 1.0,
                "correlation": 0.2,
                **values,
            }
            for layer, values in [
                ("enc1", cam),
                ("enc2", cam),
                ("dec1", cam | {"relevance_share": 0.1, "boundary_share": 0.05}),
                ("dec2", cam | {"relevance_share": 0.1}),
            ]
        ],
    )  # boundary enriched, background not depleted
    _json(
        out, "explain-lrp-confidence.json", {"over_predicted_nuclei": 0.9, "over_annotated_nuclei": 0.8, "windows": 2}
    )
    _csv(
        out,
        "speed-timing.csv",
        [
            {"label": label, "size": size, "batch": batch, "ms_per_image": ms}
            for label, size, batch, ms in [
                ("Keras model.predict", 256, 1, 100.0),
                ("TFLite int8", 256, 1, 30.0),
                ("TFLite int8", 256, 4, 10.0),
                ("TFLite int8", 512, 1, 120.0),
            ]
        ],
    )
    _csv(out, "speed-accuracy-summary.csv", [{"": "TFLite int8", "IoU change": -0.001}])
    _json(out, "speed-shipping.json", {"decisions": ["int8: shipped", "float16: shipped"]})
    _csv(
        out,
        "comparison-training.csv",
        [{"model": "U-Net", "split": "original", "seed": 42, "epochs": 20, "minutes": 9.0}],
    )
    _json(
        out,
        "run-log.json",
        {"01_eda": {"seconds": 60, "machine": {"cpu": "x", "cores": 2, "gpu": "none"}}, "08_audit": {"seconds": 6}},
    )
    return out


CARD = {"training_minutes": 10.0, "profile": "smoke", "epochs_run": 12}
EXPECTED = {
    "data-images": audit.REPRODUCED,
    "eda-sizes": audit.REPRODUCED,
    "eda-nuclei": audit.REPRODUCED,
    "eda-area": audit.NOT_REPRODUCED,
    "eda-circularity": audit.REPRODUCED,
    "eda-contrast": audit.NOT_REPRODUCED,
    "eda-intensity": audit.REPRODUCED,
    "eda-touching": audit.REPRODUCED,
    "model-parameters": audit.NOT_REPRODUCED,
    "training-accuracy": audit.REPRODUCED,
    "training-iou": audit.NOT_REPRODUCED,
    "validation-accuracy": audit.NOT_REPRODUCED,
    "validation-iou": audit.REPRODUCED,
    "training-loss": audit.UNDEFINED,
    "loss-order": audit.REPRODUCED,
    "early-progress": audit.NOT_REPRODUCED,
    "table1-unet-iou": audit.REPRODUCED,
    "table1-deeplab-accuracy": audit.NOT_REPRODUCED,
    "table1-resunet-recall": audit.REPRODUCED,
    "table2-original": audit.REPRODUCED,
    "table2-80-10-10": audit.NOT_REPRODUCED,
    "table2-70-20-10": audit.REPRODUCED,
    "table2-split-spread": audit.NOT_REPRODUCED,
    "summary-iou": audit.REPRODUCED,
    "gradcam-boundary": audit.NOT_REPRODUCED,
    "speed-inference": audit.NOT_TESTABLE,
}


@pytest.fixture()
def run_folder(tmp_path: Path) -> Path:
    return write_run(tmp_path / "artefacts")


def _audit(out: Path, **options) -> pd.DataFrame:
    return claims.build_audit(out, seed=42, tolerance=0.02, plain_parameters=1_800_000, shipped_card=CARD, **options)


def test_audit_of_a_synthetic_run(run_folder: Path) -> None:
    table = _audit(run_folder)
    assert table.columns.tolist() == ["section", "claim", "paper", "measured", "verdict", "rule", "link"]
    by_id = dict(zip((c.id for c in claims.CLAIMS), table.to_dict("records")))
    assert {key: by_id[key]["verdict"] for key in EXPECTED} == EXPECTED
    assert by_id["early-progress"]["measured"].startswith(
        "by epoch 10: 82% of the validation loss's and 25% of the validation accuracy's change from epoch 1 "
        "to the kept epoch 12 (our epochs: 10 steps of 2 crops)"
    )
    assert by_id["model-parameters"]["measured"] == "1,800,000 (plain), 2,033,362 (ours: BN, shortcuts, 2 outputs)"
    assert by_id["table1-unet-iou"]["measured"] == "0.882 (U-Net, chapter 2 (10 min), pixels pooled)"
    assert by_id["table2-split-spread"]["measured"] == "range 0.070 over splits, 0.020 over 3 seeds"
    assert by_id["lrp-relevance"]["measured"].startswith("-0.100 to 0.200")  # the prediction row left out
    assert "both hold in 2 of 4 layers" in by_id["gradcam-boundary"]["measured"]  # 2 of 4 is no majority
    assert by_id["speed-inference"]["measured"] == (
        "30.0 ms (TFLite int8) to 100.0 ms (Keras model.predict) per 256x256 image on this run's CPU"
    )
    assert by_id["training-accuracy"]["rule"] == "within 0.02"
    assert _audit(run_folder).equals(table)  # deterministic


def test_a_trained_networks_claim_is_judged_against_its_range_over_seeds(run_folder: Path) -> None:
    by_id = dict(zip((c.id for c in claims.CLAIMS), _audit(run_folder).to_dict("records")))
    assert by_id["table1-resunet-iou"]["measured"] == (
        "0.853 (ResUNet, pixels pooled; mean of 3 seeds, range 0.843-0.863)"
    )
    assert by_id["table1-resunet-iou"]["rule"] == "within 0.02 of our range over seeds"
    # ResUNet precision: seeds at 0.945, 0.930 and 0.905 (mean 0.927, 0.041 above the paper's 0.886):
    # the lowest seed is within 0.02 of the claim, so the claim is inside what retraining gives.
    per_seed = pd.read_csv(run_folder / "comparison-seeds.csv")
    resunet = per_seed["model"] == "ResUNet"
    per_seed.loc[resunet, "precision"] = [0.945, 0.930, 0.905]
    per_seed.to_csv(run_folder / "comparison-seeds.csv", index=False)
    assert _verdict(run_folder, "table1-resunet-precision") == audit.REPRODUCED
    per_seed.loc[resunet, "precision"] = [0.945, 0.930, 0.915]  # every seed more than 0.02 above the claim
    per_seed.to_csv(run_folder / "comparison-seeds.csv", index=False)
    assert _verdict(run_folder, "table1-resunet-precision") == audit.NOT_REPRODUCED


def test_the_audit_needs_every_trained_networks_seeds(run_folder: Path) -> None:
    per_seed = pd.read_csv(run_folder / "comparison-seeds.csv")
    per_seed[per_seed["model"] != "DeepLabV3+"].to_csv(run_folder / "comparison-seeds.csv", index=False)
    with pytest.raises(claims.ArtefactError, match=r"comparison-seeds.csv: no rows for 'DeepLabV3\+'"):
        _audit(run_folder)


def _verdict(out: Path, claim_id: str) -> str:
    return dict(zip((c.id for c in claims.CLAIMS), _audit(out)["verdict"]))[claim_id]


def test_the_tolerance_changes_the_single_metric_verdicts(run_folder: Path) -> None:
    loose = claims.build_audit(run_folder, tolerance=0.1, plain_parameters=1_800_000, shipped_card=CARD)
    by_id = dict(zip((c.id for c in claims.CLAIMS), loose["verdict"]))
    assert by_id["training-iou"] == by_id["validation-accuracy"] == audit.REPRODUCED
    assert loose.loc[9, "rule"] == "within 0.1"


@pytest.mark.parametrize(
    ("name", "chapter"),
    [
        ("eda-claims.json", "01_eda"),
        ("comparison-table2.csv", "03_comparison"),
        ("comparison-seeds.csv", "03_comparison"),
        ("explain-gradcam.csv", "04_gradcam"),
        ("explain-lrp-confidence.json", "05_lrp"),
        ("speed-timing.csv", "06_speed"),
        ("models/unet-original-0123/history.csv", "02_unet"),
    ],
)
def test_a_missing_artefact_is_named(run_folder: Path, name: str, chapter: str) -> None:
    (run_folder / name).unlink()
    with pytest.raises(claims.MissingArtefactError, match=rf"{name}.*written by chapter {chapter}"):
        _audit(run_folder)


def test_a_missing_training_is_named(run_folder: Path) -> None:
    (run_folder / "models/unet-original-0123/train-config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"unet-original-\*/train-config.json.*02_unet"):
        _audit(run_folder)


def test_a_malformed_artefact_is_named(run_folder: Path) -> None:
    table1 = pd.read_csv(run_folder / "comparison-table1.csv")
    table1.drop(columns="recall").to_csv(run_folder / "comparison-table1.csv", index=False)
    with pytest.raises(claims.ArtefactError, match=r"comparison-table1.csv: lacks column\(s\) 'recall'"):
        _audit(run_folder)
    table1[table1["model"] != "ResUNet"].to_csv(run_folder / "comparison-table1.csv", index=False)
    with pytest.raises(claims.ArtefactError, match="comparison-table1.csv: no row 'ResUNet'"):
        _audit(run_folder)
    table1.to_csv(run_folder / "comparison-table1.csv", index=False)
    table2 = pd.read_csv(run_folder / "comparison-table2.csv")
    table2[table2["split"] != "70-20-10"].to_csv(run_folder / "comparison-table2.csv", index=False)
    with pytest.raises(claims.ArtefactError, match="one row for split '70-20-10', seed 42; has 0"):
        _audit(run_folder)


def test_every_measurement_a_claim_uses_is_measured(run_folder: Path) -> None:
    measured = claims.measure(run_folder, plain_parameters=1, shipped_card=CARD)
    used = {name for claim in claims.CLAIMS for name in claim.measurements}
    assert used - {"tolerance"} <= set(measured)


def test_discussion_numbers(run_folder: Path) -> None:
    measured = claims.measure(run_folder, plain_parameters=1, shipped_card=CARD)
    facts = claims.discussion_facts(run_folder, measured)
    assert facts["unet_dsb"] == 0.5 and facts["shipped_iou"] == 0.882 and facts["int8_iou_change"] == -0.001
    assert facts["touching_pct"] == 50.0 and facts["fastest_ms"] == 30.0 and facts["predict_ms"] == 100.0
    assert all(isinstance(v, float) for v in facts.values())
    texts = claims.discussion_texts(run_folder, measured, _audit(run_folder))
    assert texts["unet_t1_reproduced"] == texts["unet_t1_total"] == 4
    assert texts["network_seeds"] == 3 and texts["network_separation"] == (
        "U-Net scores above ResUNet and DeepLabV3+ in every training; ResUNet scores above DeepLabV3+ in every training"
    )
    assert texts["split_vs_seed"] == "wider than" and texts["fastest_backend"] == "TFLite int8"
    assert texts["classical_gap_unet"] == pytest.approx(0.2) and texts["timing_size"] == 256
    assert texts["shipping_decisions"] == "int8: shipped; float16: shipped" and texts["train_minutes"] == 10.0


def test_run_facts_tables(run_folder: Path) -> None:
    log = claims.run_log_table(run_folder)
    assert log["notebook"].tolist() == ["01_eda"] and log.loc[0, "wall minutes"] == 1.0  # 08_audit left out
    trainings = claims.training_table(run_folder)
    assert trainings["model"].tolist() == ["U-Net, chapter 2 (unet-original-0123)", "U-Net, original, seed 42"]
    assert trainings["minutes"].tolist() == [10.0, 9.0] and trainings.index.tolist() == [0, 1]
    (run_folder / "run-log.json").unlink()
    assert claims.run_log_table(run_folder).empty
