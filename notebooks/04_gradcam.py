# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
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
profile: str = "cpu"
artefacts: str = "artefacts/lab"  # a scratch copy of the profile's artefacts; `nuclei study` passes artefacts/<profile>
seed: int = 42
max_images: "Optional[int]" = None  # None: all picked images; a number: at most that many
split: str = "original"
n_images_per_modality: int = 3
image_size: int = 256  # side of the central crop the network and Grad-CAM see (a multiple of 16)
cam_layers: "Optional[list[str]]" = None  # None: explain.default_cam_layers(model)
per_nucleus: bool = True  # also explain single nuclei (one per image)
cascade: bool = True  # cascading randomisation, block by block from the output
cascade_layer: str = "dec1_relu2"
boundary_width: int = 2  # pixels on each side of a nucleus outline in the boundary band

# %%
# Renders the figures that nucleilib.study.explain returns (built outside pyplot) as the cell's value.
# %matplotlib inline
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import display
from myst_nb import glue

from nucleilib import models
from nucleilib.study import chapter, explain, manifest as mf

started = time.perf_counter()
run = chapter.setup(profile, artefacts)
root, out = run.root, run.out
run.facts()

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
model, config = models.load_model(run.shipped())

ids = [s.image_id for s in picked_samples]
windows = explain.explanation_windows(picked_samples, modality, config, image_size)
x, truth_labels, truth = windows.x, windows.truth_labels, windows.truth
probs = model.predict(x, verbose=0)
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
# resolution, the bottleneck one sixteenth of it. {numref}`fig-gradcam-layers` shows the maps
# of every image at each layer.

# %%
maps, timings = explain.grad_cam_layers(model, x, layers)
glue("cam_seconds", sum(timings.values()), display=False)
pd.Series(timings, name="seconds").round(2).to_frame().T

# %% mystnb={"figure": {"caption": "Grad-CAM of the mean foreground probability at several depths of the U-Net, one row per test window: the window, the outlines of its annotated nuclei, the predicted foreground probability, then one map per layer (inferno heat over the grey network input, cyan outlines of the annotated nuclei).", "name": "fig-gradcam-layers"}}
explain.explanation_grid(windows, probs[..., 0], maps, range(len(ids)), truth,
                         title="Grad-CAM of the mean foreground probability (cyan: annotated nuclei)")

# %% [markdown]
# ## How much of the map falls on nuclei?
#
# Per image and layer, against the annotated nuclei of the crop: the share of the positive
# relevance inside nuclei (*relevance share*) next to the share of the pixels that are nuclei
# (*area share*, what a map spread evenly would get); their ratio (*enrichment*, 1 = no
# better than even); the pointing game (is the map's maximum on a nucleus?); and the Pearson
# correlation of the map with the nucleus mask. The seed paper also says that Grad-CAM
# "consistently focused on nuclear boundaries": the *boundary share* is the share of the
# positive relevance in a band of `boundary_width` pixels on both sides of the nucleus
# outlines, next to the share of the pixels in that band (*boundary area share*), and their
# ratio is the *boundary enrichment*. Tables give means over images, and both enrichments as
# the ratio of the mean share to the mean area share. The same measures against the model's
# own prediction are in the CSV. {numref}`fig-gradcam-share-vs-area` plots each image's
# relevance share against its area share.

# %%
measures = explain.measure_maps(maps, {"truth": truth, "prediction": pred}, ids, name="layer",
                                columns={"modality": modality, "target": "image"}, boundary_width=boundary_width)
on_truth = measures[measures["reference"] == "truth"]

# Enrichments are ratios of the means: a mean of per-image ratios is dominated by crops with few nucleus pixels.
by_layer = explain.summarise_measures(on_truth, "layer")
explain.glue_findings(explain.gradcam_findings(by_layer, on_truth))
glue("boundary_width", boundary_width, display=False)
by_layer.round(3)

# %%
explain.summarise_measures(on_truth, ["layer", "modality"]).round(3)

# %% mystnb={"figure": {"caption": "Share of the positive Grad-CAM relevance on the annotated nuclei against the share of the pixels that are nuclei, one point per image and layer (colour: layer, marker: modality). Points above the dotted diagonal put more relevance on nuclei than a map spread evenly would.", "name": "fig-gradcam-share-vs-area"}}
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
# there. Measured against that nucleus alone; {numref}`fig-gradcam-nucleus` shows the maps of
# up to three windows.

# %%
nucleus_masks = explain.largest_nucleus_masks(truth_labels) if per_nucleus else []
usable = [k for k, mask in enumerate(nucleus_masks) if mask is not None]
by_layer_nucleus = None
if usable:
    nucleus_maps = explain.nucleus_grad_cams(model, x, layers, nucleus_masks)
    nucleus_measures = explain.measure_maps(
        {layer: nucleus_maps[layer][usable] for layer in layers}, {"nucleus": [nucleus_masks[k] for k in usable]},
        [ids[k] for k in usable], name="layer", columns={"modality": [modality[k] for k in usable], "target": "nucleus"},
        boundary_width=boundary_width)
    measures = pd.concat([measures, nucleus_measures], ignore_index=True)
    by_layer_nucleus = explain.summarise_measures(nucleus_measures, "layer")
explain.glue_findings(explain.nucleus_findings(by_layer_nucleus))
display_table = by_layer_nucleus.round(3) if by_layer_nucleus is not None else pd.DataFrame()

# %% mystnb={"figure": {"caption": "Grad-CAM of the probability mass inside one nucleus (the largest annotated one of each window), per layer: inferno heat over the grey network input, with that nucleus outlined in cyan.", "name": "fig-gradcam-nucleus"}}
if usable:
    fig = explain.explanation_grid(windows, probs[..., 0], {layer: nucleus_maps[layer] for layer in layers},
                                   usable[:3], nucleus_masks,
                                   title="Grad-CAM of one nucleus's probability mass (cyan: that nucleus)")
else:
    fig = explain.placeholder_figure("Single nuclei not explained in this profile (per_nucleus = False)"
                                     if not per_nucleus else "No window with an annotated nucleus")
fig

# %%
display_table

# %% [markdown]
# ## Sanity check: do the maps depend on the weights?
#
# Adebayo et al. (2018): re-draw the network's weights from their initialisers and explain
# again. Maps that stay similar (Spearman rank correlation near 1) show the image's edges or
# the architecture, not what the network learned; maps of a randomised network should be
# unrelated to the trained ones. First all weights at once, then (cascading) block by block
# from the output down, at one layer. A map with no positive value (Grad-CAM keeps only the
# positive part) counts as similarity 0. {numref}`fig-gradcam-randomised` shows the maps of
# the fully randomised network and {numref}`fig-gradcam-cascade` the cascade.

# %%
randomised = explain.randomise_weights(model, seed=seed)
random_maps, _ = explain.grad_cam_layers(randomised, x, layers)
similarity = explain.similarity_table(maps, random_maps, ids)  # one row per image, one column per layer
rand_similarity = similarity.mean()
vanished = explain.no_positive_share(random_maps)
explain.glue_findings(explain.randomisation_findings(rand_similarity))
measures["randomised_similarity"] = [
    similarity.loc[row.image_id, row.layer] if row.target == "image" else np.nan for row in measures.itertuples()
]

# %% mystnb={"figure": {"caption": "Grad-CAM of the network with all weights re-drawn from their initialisers, for up to three windows and every layer (inferno heat over the grey network input, cyan outlines of the annotated nuclei). Maps that look like those of the trained network would not depend on what it learned.", "name": "fig-gradcam-randomised"}}
explain.explanation_grid(windows, probs[..., 0], random_maps, range(min(3, len(ids))), truth,
                         title="Grad-CAM of the network with all weights re-drawn")

# %%
pd.DataFrame({"mean Spearman similarity, trained vs randomised": rand_similarity,
              "share of randomised maps with no positive value": vanished}).round(3).T

# %%
cascade_table = pd.DataFrame()
if cascade and cascade_layer in layers:
    cascade_table = explain.grad_cam_cascade(model, x, cascade_layer, maps[cascade_layer], seed=seed)
explain.glue_findings(explain.cascade_findings(cascade_table, cascade_layer))

# %% mystnb={"figure": {"caption": "Cascading randomisation: mean Spearman rank similarity between the Grad-CAM maps of the trained network and of copies whose weights are re-drawn block by block, from the output down to the block named on the horizontal axis. The dotted line marks no similarity.", "name": "fig-gradcam-cascade"}}
if len(cascade_table):
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(cascade_table["randomised down to"], cascade_table["similarity"], marker="o")
    ax.axhline(0, color="grey", ls=":")
    ax.set(ylabel="Spearman similarity to trained map", xlabel="blocks re-drawn, from the output down to",
           title=f"Cascading randomisation, Grad-CAM at {cascade_layer}", ylim=(-1, 1))
    plt.xticks(rotation=45)
    plt.tight_layout()
    plt.show()
else:
    display(explain.placeholder_figure("Cascading randomisation not run in this profile"
                                       + ("" if cascade else " (cascade = False)")
                                       + ("" if cascade_layer in layers else f" ({cascade_layer} is not explained)")))

# %%
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
paper_table = explain.paper_readings(on_truth, "layer")
confidence = explain.confidence_readings(probs[..., 0], pred, truth)
confidence_pred, confidence_truth = confidence["over_predicted_nuclei"], confidence["over_annotated_nuclei"]
explain.glue_findings(explain.paper_findings(paper_table))
glue("total_pixels", int(truth.size), display=False)
glue("confidence_pred", confidence_pred, display=False)
glue("confidence_truth", confidence_truth, display=False)
print(f"mean foreground probability over predicted nuclei: {confidence_pred:.3f}; "
      f"over annotated nuclei: {confidence_truth:.3f} ({truth.size:,} pixels in all)")
paper_table.round(3)

# %%
measures = measures[["image_id", "modality", "layer", "target", "reference", "relevance_share", "area_share",
                     "enrichment", "pointing_game", "correlation", "mean_inside", "mean_outside",
                     "positive_pixels", "positive_regions", "boundary_share", "boundary_area_share",
                     "randomised_similarity"]]
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
# The paper's claim that Grad-CAM focuses on nuclear boundaries can be measured the same way.
# A band of {glue:text}`boundary_width` pixels on both sides of the nucleus outlines covers on
# average {glue:text}`boundary_area_share:.3f` of the pixels; the boundary enrichment (share of
# the positive relevance in that band over its area share) ranges from
# {glue:text}`boundary_enrich_min:.2f` ({glue:text}`boundary_enrich_min_layer`) to
# {glue:text}`boundary_enrich_max:.2f` ({glue:text}`boundary_enrich_max_layer`), and is
# {glue:text}`best_boundary_enrichment:.2f` at {glue:text}`best_layer`, the layer most
# concentrated on whole nuclei. A boundary focus would show as a boundary enrichment well
# above 1 and above the enrichment on whole nuclei.
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
