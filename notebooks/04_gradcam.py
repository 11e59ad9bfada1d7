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
# # Where does the U-Net look? Grad-CAM, measured
#
# The seed paper {cite}`gautam2025` backs its network with explanation maps and a few numbers
# ("a mean relevance of 0.45 across nuclear regions", "31,988 positively contributing
# regions", "a confidence score of 0.902") that it does not define. This chapter explains the
# shipped U-Net of the previous chapter with Grad-CAM {cite:p}`selvaraju2017` (computed with
# tf-explain) at several depths of its encoder and decoder, on test images of each modality,
# and *measures* the maps instead of describing them: how much of the relevance falls on
# nuclei compared with their area, whether the strongest point lies on a nucleus (the
# pointing game), how well a map correlates with the nucleus mask, and whether the maps
# survive the model-randomisation sanity check of {cite:t}`adebayo2018`, which any
# explanation that depends on what the network learned must fail. It ends with candidate
# definitions of the paper's three numbers, computed here.

# %% tags=["parameters"]
profile = "cpu"
artefacts = "artefacts/cpu"
seed = 42
max_images = None  # None: all picked images; a number: at most that many
split = "original"
n_images_per_modality = 3
image_size = 256  # side of the central crop the network and Grad-CAM see (a multiple of 16)
cam_layers = None  # None: explain.default_cam_layers(model)
per_nucleus = True  # also explain single nuclei (one per image)
cascade = True  # cascading randomisation, block by block from the output
cascade_layer = "dec1_relu2"

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook check, noise here

import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import tensorflow as tf
from myst_nb import glue
from skimage.segmentation import find_boundaries

from nucleilib import explain, manifest as mf, models, segmentation, study

started = time.perf_counter()
root = study.project_root()
out = root / artefacts
sns.set_theme(style="whitegrid", context="notebook")
tf.get_logger().setLevel("ERROR")
pd.DataFrame.from_dict(study.run_info(profile), orient="index", columns=["this run"])

# %% [markdown]
# ## Images and model
#
# Test images of the original split only (the network never saw them), up to
# `n_images_per_modality` of each modality, drawn with the study's seed. Each image is
# preprocessed as the model was trained (percentile normalisation over the whole image,
# inversion of bright backgrounds) and a square window cut out, centred on the centre of mass
# of its annotated nuclei (so that crops of unevenly covered images still hold nuclei), so
# that every map has the same size; the network predicts that window as it is.

# %%
picked_samples, modality = explain.pick_test_samples(out, split, n_images_per_modality, seed=seed, max_images=max_images)
model, config = models.load_model("unet-dsb2018")

ids = [s.image_id for s in picked_samples]
samples = {s.image_id: s for s in picked_samples}
windows = explain.explanation_windows(picked_samples, modality, config, image_size)
x, raw, truth_labels, truth = windows.x, windows.raw, windows.truth_labels, windows.truth
probs = model.predict(x, verbose=0)
pred_labels = np.stack([segmentation.labels_from_probabilities(p, config) for p in probs])
pred = probs[..., 0] > config.threshold
layers = list(cam_layers) if cam_layers is not None else explain.default_cam_layers(model)
missing = sorted(set(mf.MODALITIES) - set(modality))
glue("n_images", len(ids), display=False)
glue("image_size", image_size, display=False)
glue("n_layers", len(layers), display=False)
print(f"{len(ids)} test images, {image_size}x{image_size} crops; Grad-CAM layers: {', '.join(layers)}"
      + (f"; no test image of: {', '.join(missing)}" if missing else ""))
windows.table().round(3)

# %% [markdown]
# ## Grad-CAM at several depths
#
# The network's output is a probability map, not a class score, so the score explained is
# the mean foreground probability of the image (`explain.score_model`; tf-explain would
# otherwise explain one row of the image). For each layer, each feature map is weighted by
# the spatial mean of the gradient of that score, the weighted sum is kept where positive,
# upsampled to the image and scaled to a maximum of 1. Shallow layers have the image's
# resolution, the bottleneck one sixteenth of it.

# %%
timings = {}
maps = {}
for layer in layers:
    start = time.perf_counter()
    maps[layer] = explain.grad_cam(model, x, layer)
    timings[layer] = time.perf_counter() - start
glue("cam_seconds", sum(timings.values()), display=False)
pd.Series(timings, name="seconds").round(2).to_frame().T

# %%
def overlay(ax, image, heat, outline=None, title=""):
    ax.imshow(image.mean(axis=-1), cmap="gray", vmin=0, vmax=1)  # the network's input, in grey
    ax.imshow(heat, cmap="inferno", alpha=0.55, vmin=0, vmax=1)
    if outline is not None:
        ax.contour(outline, levels=[0.5], colors="cyan", linewidths=0.6)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def show_grid(rows, heat_by_layer, suptitle, outline_masks):
    columns = 3 + len(heat_by_layer)
    fig, axes = plt.subplots(len(rows), columns, figsize=(2.2 * columns, 2.3 * len(rows)), squeeze=False)
    for r, k in enumerate(rows):
        axes[r, 0].imshow(raw[k])
        axes[r, 0].set_title(f"{modality[k]}\n{ids[k][:10]}", fontsize=8)
        axes[r, 1].imshow(find_boundaries(truth_labels[k]), cmap="gray")
        axes[r, 1].set_title("truth", fontsize=8)
        axes[r, 2].imshow(probs[k, ..., 0], cmap="magma", vmin=0, vmax=1)
        axes[r, 2].set_title("foreground probability", fontsize=8)
        for c, (layer, heat) in enumerate(heat_by_layer.items(), start=3):
            overlay(axes[r, c], x[k], heat[k], outline_masks[k], layer)
        for ax in axes[r, :3]:
            ax.axis("off")
    fig.suptitle(suptitle)
    plt.tight_layout()
    plt.show()


show_grid(range(len(ids)), maps, "Grad-CAM of the mean foreground probability (cyan: annotated nuclei)", truth)

# %% [markdown]
# ## How much of the map falls on nuclei?
#
# Per image and layer, against the annotated nuclei of the crop: the share of the positive
# relevance inside nuclei (*relevance share*) next to the share of the pixels that are nuclei
# (*area share*, what a map spread evenly would get); their ratio (*enrichment*, 1 = no
# better than even); the pointing game (is the map's maximum on a nucleus?); and the Pearson
# correlation of the map with the nucleus mask. Tables give means over images, and the
# enrichment as the ratio of the mean relevance share to the mean area share. The same
# measures against the model's own prediction are in the CSV.

# %%
frames = []
for layer in layers:
    for reference, masks in (("truth", truth), ("prediction", pred)):
        table = explain.explanation_metrics(maps[layer], masks, ids)
        frames.append(table.assign(layer=layer, reference=reference, modality=modality, target="image"))
measures = pd.concat(frames, ignore_index=True)
on_truth = measures[measures["reference"] == "truth"]


def summarise(table, by):
    summary = table.groupby(by, sort=False).agg(
        images=("image_id", "count"), relevance_share=("relevance_share", "mean"),
        area_share=("area_share", "mean"), pointing_game=("pointing_game", "mean"),
        correlation=("correlation", "mean"),
    )
    # Ratio of the means: a mean of per-image ratios is dominated by crops with few nucleus pixels.
    summary.insert(3, "enrichment", summary["relevance_share"] / summary["area_share"])
    return summary


by_layer = summarise(on_truth, "layer")
for layer, row in by_layer.iterrows():
    glue(f"share_{layer}", float(row["relevance_share"]), display=False)
    glue(f"enrich_{layer}", float(row["enrichment"]), display=False)
    glue(f"pointing_{layer}", float(row["pointing_game"]), display=False)
    glue(f"corr_{layer}", float(row["correlation"]), display=False)
best_layer = by_layer["enrichment"].idxmax()
worst_layer = by_layer["enrichment"].idxmin()
glue("area_share", float(on_truth["area_share"].mean()), display=False)
glue("best_layer", best_layer, display=False)
glue("best_enrichment", float(by_layer.loc[best_layer, "enrichment"]), display=False)
glue("best_share", float(by_layer.loc[best_layer, "relevance_share"]), display=False)
glue("best_pointing", float(by_layer.loc[best_layer, "pointing_game"]), display=False)
glue("best_corr", float(by_layer.loc[best_layer, "correlation"]), display=False)
glue("worst_layer", worst_layer, display=False)
glue("worst_enrichment", float(by_layer.loc[worst_layer, "enrichment"]), display=False)
by_layer.round(3)

# %%
summarise(on_truth, ["layer", "modality"]).round(3)

# %%
fig, ax = plt.subplots(figsize=(5.5, 5))
sns.scatterplot(data=on_truth, x="area_share", y="relevance_share", hue="layer", style="modality", ax=ax)
lim = [0, 1]
ax.plot(lim, lim, color="grey", ls=":", label="even spread")
ax.set(xlim=lim, ylim=lim, xlabel="area share of nuclei", ylabel="share of positive Grad-CAM on nuclei")
ax.legend(fontsize=7, loc="lower right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## One nucleus at a time
#
# Explaining the whole image answers "what makes the image look nuclear". A segmentation
# network can also be asked about one nucleus: the score is then the probability mass inside
# that nucleus (its largest annotated one in each crop), and a useful map should concentrate
# there. Measured against that nucleus alone.

# %%
if per_nucleus:
    nucleus_masks = []
    for labels in truth_labels:
        values, counts = np.unique(labels[labels > 0], return_counts=True)
        nucleus_masks.append(labels == values[np.argmax(counts)] if len(values) else None)
    usable = [k for k, m in enumerate(nucleus_masks) if m is not None]
    nucleus_maps = {layer: np.zeros_like(maps[layer]) for layer in layers}
    for k in usable:
        for layer in layers:
            nucleus_maps[layer][k] = explain.grad_cam(model, x[k:k + 1], layer, region=nucleus_masks[k])[0]
    frames = []
    for layer in layers:
        table = explain.explanation_metrics([nucleus_maps[layer][k] for k in usable],
                                            [nucleus_masks[k] for k in usable], [ids[k] for k in usable],
                                            tolerance=0)
        frames.append(table.assign(layer=layer, reference="nucleus", modality=[modality[k] for k in usable],
                                   target="nucleus"))
    nucleus_measures = pd.concat(frames, ignore_index=True)
    measures = pd.concat([measures, nucleus_measures], ignore_index=True)
    by_layer_nucleus = summarise(nucleus_measures, "layer")
    best_nucleus_layer = by_layer_nucleus["pointing_game"].idxmax()
    glue("nucleus_best_layer", best_nucleus_layer, display=False)
    glue("nucleus_best_pointing", float(by_layer_nucleus.loc[best_nucleus_layer, "pointing_game"]), display=False)
    glue("nucleus_best_enrichment", float(by_layer_nucleus.loc[best_nucleus_layer, "enrichment"]), display=False)
    show_grid(usable[:3], {layer: nucleus_maps[layer] for layer in layers},
              "Grad-CAM of one nucleus's probability mass (cyan: that nucleus)", nucleus_masks)
    display_table = by_layer_nucleus.round(3)
else:
    glue("nucleus_best_layer", "not run", display=False)
    glue("nucleus_best_pointing", float("nan"), display=False)
    glue("nucleus_best_enrichment", float("nan"), display=False)
    display_table = pd.DataFrame()
display_table

# %% [markdown]
# ## Sanity check: do the maps depend on the weights?
#
# Adebayo et al. (2018): re-draw the network's weights from their initialisers and explain
# again. Maps that stay similar (Spearman rank correlation near 1) show the image's edges or
# the architecture, not what the network learned; maps of a randomised network should be
# unrelated to the trained ones. First all weights at once, then (cascading) block by block
# from the output down, at one layer. A map with no positive value (Grad-CAM keeps only the
# positive part) counts as similarity 0.

# %%
randomised = explain.randomise_weights(model, seed=seed)
random_maps = {layer: explain.grad_cam(randomised, x, layer) for layer in layers}
similarity = pd.DataFrame({
    layer: [explain.map_similarity(maps[layer][k], random_maps[layer][k]) for k in range(len(ids))]
    for layer in layers
}, index=ids)
rand_similarity = similarity.mean()
vanished = pd.Series({layer: float((random_maps[layer].max(axis=(1, 2)) == 0).mean()) for layer in layers})
glue("rand_sim_max", float(rand_similarity.max()), display=False)
glue("rand_sim_max_layer", rand_similarity.idxmax(), display=False)
glue("rand_sim_min", float(rand_similarity.min()), display=False)
for layer in layers:
    glue(f"rand_sim_{layer}", float(rand_similarity[layer]), display=False)
measures["randomised_similarity"] = [
    similarity.loc[row.image_id, row.layer] if row.target == "image" else np.nan for row in measures.itertuples()
]
show_grid(range(min(3, len(ids))), random_maps, "Grad-CAM of the network with all weights re-drawn", truth)
pd.DataFrame({"mean Spearman similarity, trained vs randomised": rand_similarity,
              "share of randomised maps with no positive value": vanished}).round(3).T

# %%
if cascade and cascade_layer in layers:
    blocks = explain.layer_blocks(model)
    rows = []
    chosen = []
    for block, names in blocks:
        chosen += names
        scrambled = explain.randomise_weights(model, chosen, seed=seed)
        cascade_maps = explain.grad_cam(scrambled, x, cascade_layer)
        rows.append({"randomised down to": block, "similarity": np.mean(
            [explain.map_similarity(maps[cascade_layer][k], cascade_maps[k]) for k in range(len(ids))])})
        del scrambled
    cascade_table = pd.DataFrame(rows)
    glue("cascade_layer", cascade_layer, display=False)
    glue("cascade_first", float(cascade_table["similarity"].iloc[0]), display=False)
    glue("cascade_last", float(cascade_table["similarity"].iloc[-1]), display=False)
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(cascade_table["randomised down to"], cascade_table["similarity"], marker="o")
    ax.axhline(0, color="grey", ls=":")
    ax.set(ylabel="Spearman similarity to trained map", xlabel="blocks re-drawn, from the output down to",
           title=f"Cascading randomisation, Grad-CAM at {cascade_layer}", ylim=(-1, 1))
    plt.xticks(rotation=45)
    plt.tight_layout()
    plt.show()
else:
    glue("cascade_layer", "not run", display=False)
    glue("cascade_first", float("nan"), display=False)
    glue("cascade_last", float("nan"), display=False)
    cascade_table = pd.DataFrame()
cascade_table.round(3)

# %% [markdown]
# ## What the paper's numbers could mean
#
# The paper reports "a mean relevance of 0.45 across nuclear regions", "31,988 positively
# contributing regions" and "a confidence score of 0.902" without saying how they were
# computed, for which images or which method. Plausible counterparts, computed here (Grad-CAM
# maps scaled to a maximum of 1 per image, annotated nuclei of the crops, all picked images
# pooled):
#
# * *mean relevance across nuclear regions*: the mean of the scaled map over nucleus pixels;
# * *positively contributing regions*: the number of pixels with positive relevance, or the
#   number of connected regions they form, summed over the images;
# * *confidence score*: the mean foreground probability over the pixels the model calls
#   nucleus (or over the annotated nuclei).
#
# None reproduces a number without the paper's definition; the table shows how far each
# reading depends on the layer.

# %%
paper_rows = []
for layer in layers:
    rows = on_truth[on_truth["layer"] == layer]
    paper_rows.append({"layer": layer, "mean relevance in nuclei": rows["mean_inside"].mean(),
                       "mean relevance elsewhere": rows["mean_outside"].mean(),
                       "positive pixels (sum)": int(rows["positive_pixels"].sum()),
                       "positive regions (sum)": int(rows["positive_regions"].sum())})
paper_table = pd.DataFrame(paper_rows).set_index("layer")
confidence_pred = float(probs[..., 0][pred].mean()) if pred.any() else float("nan")
confidence_truth = float(probs[..., 0][truth].mean()) if truth.any() else float("nan")
glue("relevance_in_nuclei_min", float(paper_table["mean relevance in nuclei"].min()), display=False)
glue("relevance_in_nuclei_max", float(paper_table["mean relevance in nuclei"].max()), display=False)
glue("positive_pixels_min", int(paper_table["positive pixels (sum)"].min()), display=False)
glue("positive_pixels_max", int(paper_table["positive pixels (sum)"].max()), display=False)
glue("positive_regions_min", int(paper_table["positive regions (sum)"].min()), display=False)
glue("positive_regions_max", int(paper_table["positive regions (sum)"].max()), display=False)
glue("total_pixels", int(truth.size), display=False)
glue("confidence_pred", confidence_pred, display=False)
glue("confidence_truth", confidence_truth, display=False)
print(f"mean foreground probability over predicted nuclei: {confidence_pred:.3f}; "
      f"over annotated nuclei: {confidence_truth:.3f} ({truth.size:,} pixels in all)")
paper_table.round(3)

# %%
measures = measures[["image_id", "modality", "layer", "target", "reference", "relevance_share", "area_share",
                     "enrichment", "pointing_game", "correlation", "mean_inside", "mean_outside",
                     "positive_pixels", "positive_regions", "randomised_similarity"]]
measures.to_csv(out / "explain-gradcam.csv", index=False)
minutes = (time.perf_counter() - started) / 60
glue("minutes", minutes, display=False)
print(f"{len(measures)} rows written to {Path(artefacts) / 'explain-gradcam.csv'}; "
      f"chapter computed in {minutes:.1f} min")

# %% [markdown]
# ## Findings
#
# On {glue:text}`n_images` test crops of {glue:text}`image_size` pixels, nuclei cover on average
# {glue:text}`area_share:.3f` of the pixels, the share an uninformative map would put on them.
# The layer whose Grad-CAM concentrates most on nuclei is {glue:text}`best_layer`: a relevance
# share of {glue:text}`best_share:.3f`, an enrichment of {glue:text}`best_enrichment:.2f`, a
# pointing-game hit rate of {glue:text}`best_pointing:.2f` and a correlation with the nucleus
# mask of {glue:text}`best_corr:.2f`; the least, {glue:text}`worst_layer`, has an enrichment of
# {glue:text}`worst_enrichment:.2f`. Explaining single nuclei, the best pointing-game rate is
# {glue:text}`nucleus_best_pointing:.2f` ({glue:text}`nucleus_best_layer`).
#
# Under the sanity check, the mean rank similarity between the maps of the trained and of the
# fully randomised network ranges from {glue:text}`rand_sim_min:.2f` to
# {glue:text}`rand_sim_max:.2f` ({glue:text}`rand_sim_max_layer`); with cascading randomisation
# at {glue:text}`cascade_layer` it goes from {glue:text}`cascade_first:.2f` (output layer re-drawn) to
# {glue:text}`cascade_last:.2f` (all re-drawn). High values would mean the maps show the image
# rather than the model.
#
# The paper's undefined numbers have counterparts of the same kind here: a mean scaled
# relevance over nuclei between {glue:text}`relevance_in_nuclei_min:.2f` and
# {glue:text}`relevance_in_nuclei_max:.2f` depending on the layer (paper: 0.45); between
# {glue:text}`positive_pixels_min` and {glue:text}`positive_pixels_max` positive pixels, or
# {glue:text}`positive_regions_min` to {glue:text}`positive_regions_max` connected positive
# regions, out of {glue:text}`total_pixels` pixels (paper: 31,988 "regions"); and a mean
# foreground probability of {glue:text}`confidence_pred:.3f` over predicted nuclei
# ({glue:text}`confidence_truth:.3f` over annotated ones; paper: 0.902 "confidence"). Counts
# scale with the number and size of the images, so the paper's 31,988 cannot be compared
# without knowing them.
