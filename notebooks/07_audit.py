# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # What held: the claims audit, a discussion, and the facts of this run
#
# Every quantitative claim of the seed paper {cite}`gautam2025`, set beside what the chapters of
# this book measured, with a verdict computed by a stated rule: *reproduced*, *not reproduced*,
# *undefined in the paper* (the paper gives a number without saying what it measures), or *not
# testable here* (it depends on hardware we do not have). Each row links to the section that
# measured it. Nothing is measured anew here: the chapters' saved results are read back.

# %% tags=["parameters"]
profile = "cpu"
artefacts = "artefacts/cpu"
seed = 42
max_images = None
metric_tolerance = 0.02

# %%
import json

import pandas as pd
from IPython.display import HTML, display
from myst_nb import glue

from nucleilib import models
from nucleilib.study import audit, chapter, explain

run = chapter.setup(profile, artefacts)
root, out = run.root, run.out
run.facts()

# %% [markdown]
# ## The rules
#
# - A single number (a metric) is *reproduced* when it lies inside our bootstrap 95% interval,
#   or, where we have no interval, within {glue:text}`tolerance` of our value.
# - A range ("areas from 8 to 45 pixels") is *reproduced* when at least 90% of our measured
#   values fall inside it.
# - A mean and SD are *reproduced* when both are within 25% of ours.
# - An order ("validation loss below training loss") is *reproduced* when ours is the same; a
#   claim about the course of training ("improvement within the first 10 epochs") when each
#   curve has made at least half of its change from epoch 1 to the kept epoch by then; a
#   claim about explanation maps when it holds in most of the layers explained.
#
# The paper prints Table 1 in percent (97.5); it is shown here as fractions (0.975).

# %%
glue("tolerance", metric_tolerance, display=False)
eda = json.loads((out / "eda-claims.json").read_text())
table1 = pd.read_csv(out / "comparison-table1.csv").set_index("model")
table2 = pd.read_csv(out / "comparison-table2.csv")
unet_summary = pd.read_csv(out / "unet-test-summary.csv").set_index("metric")
images = pd.read_csv(out / "eda-images.csv")
main_runs = sorted((out / "models").glob("unet-original-*/train-config.json"), key=lambda p: p.stat().st_mtime)
main_info = json.loads(main_runs[-1].read_text())
history = pd.read_csv(main_runs[-1].parent / "history.csv")
best = history.iloc[main_info["best_epoch"] - 1]
shipped_name = [name for name in table1.index if name.startswith("U-Net, chapter 2")][0]

rows = []


def add(section, claim, paper, measured, verdict, rule, link):
    rows.append(audit.AuditRow(section, claim, paper, measured, verdict, rule, link))


def ci_of(text):
    low, high = (float(v) for v in text.split("-"))
    return low, high


eda_link = "01_eda.html"
add("Data", "images in the data set", "740 (670 train, 10 val, 60 test)", f"{eda['n_images']:.0f} (stage1_train, community-fixed)",
    audit.point_verdict(740, eda["n_images"], tolerance=0), "exact count", f"{eda_link}#the-manifest-sizes-modalities-density")
add("EDA", "image sizes 256x256 to 1024x1024", "256-1024 px", f"{100 * eda['sizes_share_within_256_1024']:.1f}% of images within",
    audit.range_verdict(eda["sizes_share_within_256_1024"]), ">= 90% inside", f"{eda_link}#the-manifest-sizes-modalities-density")
add("EDA", "nuclei per image", "71 +/- 9", f"{eda['count_mean']:.1f} +/- {eda['count_sd']:.1f}",
    audit.mean_sd_verdict(71, 9, images["nuclei"].to_numpy()), "mean and SD within 25%", f"{eda_link}#nuclei-per-image")
for key, claim, paper, link in [
    ("area", "nucleus area", "8-45 px", "nucleus-area-and-circularity"),
    ("circularity", "nucleus circularity", "0.6-0.9", "nucleus-area-and-circularity"),
    ("contrast", "normalised contrast", "0.4-0.9", "contrast-and-intensity"),
    ("intensity", "mean intensity", "0.2-0.8", "contrast-and-intensity"),
]:
    share = eda[f"{key}_share_in_paper"]
    digits = 0 if key == "area" else 2
    add("EDA", claim, paper, f"5th-95th pct {eda[f'{key}_p5']:.{digits}f}-{eda[f'{key}_p95']:.{digits}f}; {100 * share:.1f}% inside",
        audit.range_verdict(share), ">= 90% inside", f"{eda_link}#{link}")
add("EDA", "images with overlapping (touching) nuclei", "about 27%",
    f"{100 * eda['touching_any_share']:.1f}% any, {100 * eda['touching_10_share']:.1f}% >= 10% of nuclei",
    audit.point_verdict(0.27, eda["touching_10_share"], tolerance=0.05), "within 5 points (>= 10% definition)",
    f"{eda_link}#touching-nuclei")

unet_link = "02_unet.html"
plain = models.build_unet(models.ModelConfig(residual=False, batch_norm=False, outputs=("foreground",))).count_params()
add("Model", "U-Net parameters", "about 1.94 M", f"{plain:,} (plain), {table1.loc[shipped_name, 'parameters']:,.0f} (ours: BN, shortcuts, 2 outputs)",
    audit.point_verdict(1.94e6, plain, tolerance=0.005e6), "within 0.005 M", f"{unet_link}#the-network")
for metric, paper_value, label in [("accuracy", 0.9710, "training accuracy"), ("iou", 0.8829, "training IoU")]:
    add("Training", label, f"{paper_value:.4f}", f"{best[metric]:.4f} (augmented crops, kept epoch)",
        audit.point_verdict(paper_value, best[metric], tolerance=metric_tolerance), f"within {metric_tolerance}", f"{unet_link}#training")
for metric, paper_value, label in [("val_accuracy", 0.9705, "validation accuracy"), ("val_iou", 0.8826, "validation IoU")]:
    add("Training", label, f"{paper_value:.4f}", f"{best[metric]:.4f} ({len(history)} epochs, kept epoch {main_info['best_epoch']})",
        audit.point_verdict(paper_value, best[metric], tolerance=metric_tolerance), f"within {metric_tolerance}", f"{unet_link}#training")
add("Training", "training / validation loss", "0.0753 / 0.0717", f"{best['loss']:.4f} / {best['val_loss']:.4f} (BCE + Dice on two outputs)",
    audit.UNDEFINED, "the paper's loss weighting is not given, so loss values are not comparable", f"{unet_link}#training")
add("Training", "validation loss ends below training loss", "0.0717 < 0.0753",
    f"{best['val_loss']:.4f} {'<' if best['val_loss'] < best['loss'] else '>='} {best['loss']:.4f} (kept epoch)",
    audit.order_verdict((0.0753, 0.0717), (best["loss"], best["val_loss"])), "same order", f"{unet_link}#training")
early_epoch = min(10, main_info["best_epoch"])
early = {metric: audit.progress_share(history[metric], by_epoch=early_epoch, final_epoch=main_info["best_epoch"])
         for metric in ("val_loss", "val_accuracy")}
add("Training", "loss and accuracy improve significantly within the first 10 epochs", "first 10 epochs",
    f"by epoch {early_epoch}: {100 * early['val_loss']:.0f}% of the validation loss's and "
    f"{100 * early['val_accuracy']:.0f}% of the validation accuracy's change from epoch 1 to the kept epoch "
    f"{main_info['best_epoch']} (our epochs: {main_info['config']['steps_per_epoch']} steps of {main_info['config']['batch_size']} crops)",
    audit.early_progress_verdict(list(early.values())), ">= 50% of each curve's change made by epoch 10",
    f"{unet_link}#training")

paper_table1 = {
    "U-Net": {"accuracy": 0.975, "precision": 0.945, "recall": 0.951, "IoU": 0.882},
    "DeepLabV3+": {"accuracy": 0.912, "precision": 0.887, "recall": 0.891, "IoU": 0.805},
    "ResUNet": {"accuracy": 0.946, "precision": 0.886, "recall": 0.817, "IoU": 0.853},
}
cmp_link = "03_comparison.html#table-1-the-networks-on-the-original-test-split"
for model_name, claims in paper_table1.items():
    ours = shipped_name if model_name == "U-Net" else model_name
    label = "U-Net" if model_name == "U-Net" else ("DeepResNet" if model_name == "ResUNet" else model_name)
    for metric, value in claims.items():
        add("Table 1", f"{label} {metric}", f"{value:.3f}", f"{table1.loc[ours, metric]:.3f} ({ours}, pixels pooled)",
            audit.point_verdict(value, table1.loc[ours, metric], tolerance=metric_tolerance), f"within {metric_tolerance}", cmp_link)

add("Table 1", "methods compared", "\"three widely recognized SOTA methods\", two named",
    f"the two named networks ({', '.join(n for n in paper_table1 if n != 'U-Net')}) and a classical baseline",
    audit.UNDEFINED, "the paper names two of its three methods", cmp_link)

split_link = "03_comparison.html#table-2-the-u-net-on-three-splits-and-on-three-seeds"
for _, row in table2[table2["paper IoU"].notna()].iterrows():
    add("Table 2", f"U-Net IoU, {row['split']} split", f"{row['paper IoU']:.2f}",
        f"{row['IoU']:.3f} (95% CI {row['IoU 95% CI']}, per image)",
        audit.point_verdict(row["paper IoU"], row["IoU"], tolerance=0.0, interval=ci_of(row["IoU 95% CI"])),
        "inside our 95% CI", split_link)
seed_rows = table2[table2["split"] == "original"]
split_rows = table2[table2["seed"] == seed]
split_range, seed_range = float(split_rows["IoU"].max() - split_rows["IoU"].min()), float(seed_rows["IoU"].max() - seed_rows["IoU"].min())
add("Table 2", "IoU insensitive to the split (0.83-0.88)", "range 0.05 over splits",
    f"range {split_range:.3f} over splits, {seed_range:.3f} over {len(seed_rows)} seeds",
    audit.REPRODUCED if split_range <= max(seed_range, 0.05) else audit.NOT_REPRODUCED,
    "split range no wider than the seed range (or 0.05)", split_link)
add("Summary", "headline IoU (abstract; \"on the validation set\" in the conclusion)", "0.88",
    f"test: {table1.loc[shipped_name, 'IoU']:.3f} pooled, {unet_summary.loc['iou', 'per-image mean']:.3f} per image; "
    f"validation: {best['val_iou']:.3f}",
    audit.point_verdict(0.88, table1.loc[shipped_name, "IoU"], tolerance=metric_tolerance), f"within {metric_tolerance}",
    f"{unet_link}#evaluation-on-the-test-images")
add("Summary", "official DSB score (not in the paper; the Keras starter scored 0.277)", "-",
    f"{unet_summary.loc['dsb_score', 'per-image mean']:.3f} per image, on our test split of stage1_train",
    audit.UNDEFINED, "the paper reports no instance metric", f"{unet_link}#evaluation-on-the-test-images")

lrp = pd.read_csv(out / "explain-lrp.csv")
lrp = lrp[lrp["reference"] == "truth"]
by_rule = lrp.groupby("rule").agg(mean_inside=("mean_inside", "mean"), regions=("positive_regions", "sum"),
                                  pixels=("positive_pixels", "sum"))
lrp_link = "05_lrp.html#the-paper-s-numbers-lrp-readings"
add("Explanations", "LRP mean relevance across nuclear regions", "0.45",
    f"{by_rule['mean_inside'].min():.3f} to {by_rule['mean_inside'].max():.3f} (mean scaled relevance in nuclei, by rule)",
    audit.UNDEFINED, "no definition, rule or image set given", lrp_link)
add("Explanations", "positively contributing regions", "31,988",
    f"{by_rule['regions'].min():,.0f} to {by_rule['regions'].max():,.0f} regions ({by_rule['pixels'].min():,.0f} to "
    f"{by_rule['pixels'].max():,.0f} pixels) over {lrp['image_id'].nunique()} windows, by rule",
    audit.UNDEFINED, "a count that scales with image number and size; no definition given", lrp_link)
gradcam = pd.read_csv(out / "explain-gradcam.csv")
gradcam_truth = gradcam[(gradcam["reference"] == "truth") & (gradcam["target"] == "image")]
cam_layers = explain.summarise_measures(gradcam_truth, "layer")
boundary_enrichment = cam_layers["boundary_enrichment"]
background_enrichment = (1 - cam_layers["relevance_share"]) / (1 - cam_layers["area_share"])
nucleus_enrichment = cam_layers["enrichment"]
boundary_holds = (boundary_enrichment > 1) & (background_enrichment < 1)
add("Explanations", "Grad-CAM attention high on nuclear boundaries, low on background", "qualitative (its Fig. 6)",
    f"a band along the nucleus outlines gets {boundary_enrichment.min():.1f}-{boundary_enrichment.max():.1f}x its area share "
    f"of positive Grad-CAM, the background {background_enrichment.min():.2f}-{background_enrichment.max():.2f}x; "
    f"both hold in {int(boundary_holds.sum())} of {len(boundary_holds)} layers (the nuclei as a whole get "
    f"{nucleus_enrichment.min():.1f}-{nucleus_enrichment.max():.1f}x: the band beats them in "
    f"{int((boundary_enrichment > nucleus_enrichment).sum())} layers)",
    audit.majority_verdict(boundary_holds.tolist()), "boundary band enriched (> 1x) and background depleted (< 1x) in most layers",
    "04_gradcam.html#how-much-of-the-map-falls-on-nuclei")
lrp_confidence = json.loads((out / "explain-lrp-confidence.json").read_text())
add("Explanations", "confidence score (with the LRP overlays)", "0.902",
    f"{lrp_confidence['over_predicted_nuclei']:.3f} / {lrp_confidence['over_annotated_nuclei']:.3f} (mean foreground "
    f"probability over predicted / annotated nuclei, {lrp_confidence['windows']} windows)",
    audit.UNDEFINED, "no definition given", lrp_link)

timing = pd.read_csv(out / "speed-timing.csv")
at_256 = timing[(timing["size"] == timing["size"].min()) & (timing["batch"] == 1)].set_index("label")["ms_per_image"]
shipped_card = models.model_card("unet-dsb2018")
add("Speed", "inference time per image", "99.37 ms (RTX 3060)",
    f"{at_256.min():.1f} ms ({at_256.idxmin()}) to {at_256.max():.1f} ms ({at_256.idxmax()}) per "
    f"{timing['size'].min()}x{timing['size'].min()} image on this run's CPU",
    audit.NOT_TESTABLE, "no RTX 3060 here; CPU figures given instead", "06_speed.html")
add("Speed", "training time", "about 2.5 h (RTX 3060)",
    f"{shipped_card['training_minutes']:.1f} min for the shipped model on a {shipped_card['profile']} run "
    f"({shipped_card['epochs_run']} epochs)", audit.NOT_TESTABLE, "no RTX 3060 here; our budget is a choice",
    f"{unet_link}#training")

# %% [markdown]
# ## The audit table

# %%
audit_table = pd.DataFrame([r.as_dict() for r in rows])
audit_table.to_csv(out / "claims-audit.csv", index=False)
counts = audit_table["verdict"].value_counts()
for verdict in audit.VERDICTS:
    glue(f"n_{verdict.replace(' ', '_')}", int(counts.get(verdict, 0)), display=False)
glue("n_claims", len(audit_table), display=False)
shown = audit_table.assign(where=[f'<a href="{link}">{link.split("#")[0].removesuffix(".html")}</a>' for link in audit_table["link"]])
display(HTML(shown.drop(columns="link").to_html(index=False, escape=False)))
counts.to_frame("claims")

# %% [markdown]
# ## Discussion
#
# The numbers below are read back from the chapters' saved results.

# %%
lrp_enrichment = explain.summarise_measures(lrp, "rule")["enrichment"]
accuracy = pd.read_csv(out / "speed-accuracy-summary.csv", index_col=0)
shipping = json.loads((out / "speed-shipping.json").read_text())
fastest = at_256.idxmin()
facts = {
    "unet_dsb": table1.loc["U-Net", "DSB score"], "resunet_dsb": table1.loc["ResUNet", "DSB score"],
    "deeplab_dsb": table1.loc["DeepLabV3+", "DSB score"], "classical_dsb": table1.loc["Classical", "DSB score"],
    "shipped_dsb": table1.loc[shipped_name, "DSB score"], "shipped_iou": table1.loc[shipped_name, "IoU"],
    "classical_iou": table1.loc["Classical", "IoU"], "split_range": split_range, "seed_range": seed_range,
    "touching_pct": 100 * eda["touching_any_share"], "fastest_ms": at_256.min(),
    "predict_ms": at_256.get("Keras model.predict", float("nan")),
    "int8_iou_change": accuracy.loc["TFLite int8", "IoU change"] if "TFLite int8" in accuracy.index else float("nan"),
    "gradcam_enrichment_max": nucleus_enrichment.max(), "lrp_enrichment_max": lrp_enrichment.max(),
}
for key, value in facts.items():
    glue(key, float(value), display=False)
unet_rows = [r for r in rows if r.section == "Table 1" and r.claim.startswith("U-Net ")]
glue("unet_t1_reproduced", sum(r.verdict == audit.REPRODUCED for r in unet_rows), display=False)
glue("unet_t1_total", len(unet_rows), display=False)
glue("split_vs_seed", "wider than" if split_range > seed_range else "no wider than", display=False)
glue("classical_gap_unet", float(table1.loc["U-Net", "DSB score"] - table1.loc["Classical", "DSB score"]), display=False)
glue("classical_gap_deeplab", float(table1.loc["DeepLabV3+", "DSB score"] - table1.loc["Classical", "DSB score"]), display=False)
glue("classical_gap_resunet", float(table1.loc["ResUNet", "DSB score"] - table1.loc["Classical", "DSB score"]), display=False)
glue("fastest_backend", fastest, display=False)
glue("timing_size", int(timing["size"].min()), display=False)
glue("shipping_decisions", "; ".join(shipping["decisions"]), display=False)
pd.Series(facts, name="value").round(4).to_frame()

# %% [markdown]
# **What held.** The paper's pixel-level picture of its U-Net holds
# ({glue:text}`unet_t1_reproduced` of its {glue:text}`unet_t1_total` Table 1 numbers for the
# U-Net are reproduced): trained on two CPU cores for {glue:text}`train_minutes:.0f` minutes,
# the same network reaches a pooled test IoU of {glue:text}`shipped_iou:.3f` (paper: 0.882),
# and its size matches the 1.94 M parameters of the well-known starter network.
#
# **What did not.** Most of the data description does not match the data: the paper's ranges
# for nucleus size, circularity, contrast and intensity cover a minority of what we measure,
# and {glue:text}`touching_pct:.0f`% of images have touching nuclei, not 27%. With one
# training budget for all, the DSB scores are {glue:text}`unet_dsb:.3f` for the U-Net,
# {glue:text}`resunet_dsb:.3f` for the deep residual U-Net and {glue:text}`deeplab_dsb:.3f` for
# DeepLabV3+ trained from scratch; the classical Otsu-and-watershed pipeline, with no training
# at all, scores {glue:text}`classical_dsb:.3f` (pooled IoU {glue:text}`classical_iou:.3f`),
# only {glue:text}`classical_gap_deeplab:.3f`, {glue:text}`classical_gap_resunet:.3f` and
# {glue:text}`classical_gap_unet:.3f` below those networks. Pixel IoU hides most of what
# matters for counting cells: the instance (DSB) score of the best model here is
# {glue:text}`shipped_dsb:.3f`. Retrained on the three splits, the U-Net's per-image IoU spans
# {glue:text}`split_range:.3f`, {glue:text}`split_vs_seed` the {glue:text}`seed_range:.3f`
# spread of three seeds on one split; each split has its own test images, so part of that
# spread is the test set rather than the training data. The explanation numbers of the paper
# are undefined; measured with stated definitions, Grad-CAM puts up to
# {glue:text}`gradcam_enrichment_max:.1f` times and LRP up to
# {glue:text}`lrp_enrichment_max:.1f` times the area share of its positive relevance on nuclei.
#
# **Limitations.** One data set (DSB2018 stage 1, whose test labels we do not use), small test
# splits (54 to 66 images, so intervals are wide), CPU training budgets far below the paper's
# 2.5 GPU hours, and DeepLabV3+ without the ImageNet pretraining it is normally used with.
#
# **Resource-constrained labs.** The whole study runs on a two-core laptop. On such a CPU the
# shipped model segments a {glue:text}`timing_size`-pixel image in
# {glue:text}`fastest_ms:.0f` ms with {glue:text}`fastest_backend`, against
# {glue:text}`predict_ms:.0f` ms with Keras' `predict`; int8 quantisation changes the test IoU by
# {glue:text}`int8_iou_change:+.4f` ({glue:text}`shipping_decisions`). A lab can segment its own
# folder of images with `nuclei predict` and no GPU.
#
# **Next steps.** Train the comparison networks longer (the `gpu` profile), evaluate on the
# DSB stage 2 test set, and fine-tune on a lab's own annotated images.

# %%
glue("train_minutes", float(shipped_card["training_minutes"]), display=False)

# %% [markdown]
# ## The facts of this run
#
# Hardware, versions and commit of this chapter's execution are in the table at its top. The
# wall time of each chapter's last execution, and of the trainings it reused from the model
# cache (a chapter re-executed with cached models takes minutes while its trainings took much
# longer), come from the runner's log and the models' training records. Every chapter uses the
# seed below for its split, initial weights, crop order and augmentation (the comparison
# chapter adds further seeds, listed in its Table 2). This chapter's own run is logged when it
# ends, so the table leaves it out (it takes seconds).

# %%
run_log = json.loads((out / "run-log.json").read_text()) if (out / "run-log.json").is_file() else {}
log_table = pd.DataFrame([
    {"notebook": name, "wall minutes": entry["seconds"] / 60, "finished (UTC)": entry.get("finished_utc", ""),
     "commit": entry.get("git_commit", ""), "CPU": entry.get("machine", {}).get("cpu", ""),
     "cores": entry.get("machine", {}).get("cores", ""), "GPU": entry.get("machine", {}).get("gpu", "")}
    for name, entry in sorted(run_log.items()) if name != "07_audit"
])
trainings = pd.concat([
    pd.DataFrame([{"model": f"U-Net, chapter 2 ({main_runs[-1].parent.name})", "minutes": main_info["seconds"] / 60,
                   "epochs": main_info["epochs_run"]}]),
    pd.read_csv(out / "comparison-training.csv").assign(
        model=lambda d: d["model"] + ", " + d["split"] + ", seed " + d["seed"].astype(str))[["model", "minutes", "epochs"]],
])
glue("seed", seed, display=False)
glue("total_training_minutes", float(trainings["minutes"].sum()), display=False)
glue("total_notebook_minutes", float(log_table["wall minutes"].sum()) if len(log_table) else float("nan"), display=False)
display(log_table.round(1))
trainings.round(1)

# %% [markdown]
# Seed: {glue:text}`seed`. Trainings behind this book: {glue:text}`total_training_minutes:.0f`
# minutes in all; the chapters' last executions: {glue:text}`total_notebook_minutes:.0f` minutes.
# A determinism test (`tests/test_determinism.py`) trains twice with one seed and checks that
# the split, the weights and the metrics are identical on the CPU.

# %% [markdown]
# ## Findings
#
# Of {glue:text}`n_claims` quantitative claims, {glue:text}`n_reproduced` are reproduced,
# {glue:text}`n_not_reproduced` are not, {glue:text}`n_undefined_in_the_paper` are undefined in
# the paper and {glue:text}`n_not_testable_here` cannot be tested on our hardware.
