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
# # Images the network never saw: whole imaging groups held out
#
# The paper's split, like every random split of the Data Science Bowl images, puts images of
# the same experiment (same microscope, stain and image size) in training and test alike, so
# its test score says how well the network knows *these* experiments. A lab brings images of
# its own, from conditions the network never saw; the competition's second stage was built
# around that {cite}`caicedo2019`. This chapter measures it inside the study: the 664 images
# are grouped into imaging experiments, and each group is scored by a network trained without
# any image of it. The first numbers here are the baseline; then each lever against unseen
# conditions (nucleus scale, colour and stain augmentation, balanced sampling, test-time
# augmentation, the separation method) is measured under the same protocol.
#
# **Prerequisites:** the data chapter (manifest) and the comparison chapter (the same-budget
# U-Net on the random split, the reference for each group).

# %% tags=["parameters"]
profile: str = "cpu"
artefacts: str = "artefacts/lab"  # a scratch copy of the profile's artefacts; `nuclei study` passes artefacts/<profile>
seed: int = 42
max_images: "Optional[int]" = None
folds: int = 3
crop: int = 128
batch_size: int = 8
epochs: int = 20
steps_per_epoch: int = 60
patience: int = 12
max_minutes: float = 20.0
levers: list[str] = ["modality", "scale", "scale+modality", "separation", "bfloat16"]
inference_runs: list[list[str]] = [["baseline", "rescaled at inference, 16 px"], ["baseline", "rescaled at inference, 20 px"],
                                   ["baseline", "rescaled at inference, 24 px"], ["baseline", "rescaled at inference, 28 px"],
                                   ["baseline", "rescaled at inference, 24 px, grey input"],
                                   ["baseline", "rescaled at inference, 24 px, hematoxylin input"],
                                   ["modality", "rescaled at inference, 20 px"], ["separation", "rescaled at inference, 20 px"],
                                   ["bfloat16", "rescaled at inference, 24 px"]]
tta_views: int = 8
methods: list[str] = ["components", "borders"]
stardist: bool = True
stardist_folds: "Optional[int]" = None

# %%
import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

from nucleilib import models
from nucleilib.study import chapter, groups as grp, levers as lv, starconvex as sc
from nucleilib.study import manifest as mf

run = chapter.setup(profile, artefacts)
root, out, model_cache = run.root, run.out, run.models
run.facts()

# %% [markdown]
# ## The imaging groups
#
# An image's group is its modality (fluorescence, bright field, stained tissue; see the data
# chapter) and its size: the DSB images come in a handful of sizes per modality, each one
# experiment or a few alike. Sizes with fewer than 30 images join their modality's "other
# sizes" group.

# %%
manifest = mf.load_manifest(out).reset_index()
groups = grp.imaging_groups(manifest)
glue("n_groups", int(groups.nunique()), display=False)
grp.group_table(groups)

# %% [markdown]
# ## The protocol
#
# The groups are dealt, largest first, into {glue:text}`n_folds` folds of similar size. For
# each fold one U-Net is trained on the other folds' images (with nine of them kept for early
# stopping) with the comparison chapter's budget (1,200 steps of 8 crops of 128 pixels), and
# every image of the fold is scored at full resolution. Every image is thus scored by a network
# that saw no image of its group. The trained networks are cached by their configuration.

# %%
fold_list = grp.grouped_folds(groups, folds or None)
grp.check_folds(fold_list, groups)
glue("n_folds", len(fold_list), display=False)
pd.DataFrame({"groups held out": [", ".join(f["groups"]) for f in fold_list],
              "test images": [len(f["test"]) for f in fold_list],
              "training images": [len(f["train"]) for f in fold_list]})

# %%
samples = mf.load_samples(list(groups.index))
budget = grp.comparison_budget(crop=crop, batch_size=batch_size, epochs=epochs, steps_per_epoch=steps_per_epoch,
                               patience=patience, max_minutes=max_minutes, seed=seed)
baseline = lv.lever_evaluation(samples, groups, fold_list, budget, model_cache, "baseline", methods=methods)
per_image = baseline[baseline["method"] == budget.model.separation]
held_out = grp.write_grouped(per_image, out, f"grouped-unet-{len(fold_list)}folds")
held_out.round(3)

# %% [markdown]
# ## Held out against the random split
#
# The same network and budget trained on the random ("original") split scores the test images
# of that split; {numref}`fig-unseen-groups` sets each group's held-out score against it (the
# random split has only a few test images of the small groups, so those bars are rough).

# %%
random_per_image = pd.read_csv(out / "comparison-per-image.csv")  # the comparison's seed, as the folds here
random_split = grp.random_split_by_group(random_per_image, groups)
comparison = grp.held_out_against_random(held_out, random_split)
glue("dsb_groups_mean", float(held_out.loc["mean over groups", "DSB"]), display=False)
glue("dsb_images_mean", float(held_out.loc["mean over images", "DSB"]), display=False)
glue("dsb_random", float(random_per_image.loc[random_per_image["model"] == "U-Net", "dsb_score"].mean()), display=False)
glue("dsb_worst_group", comparison["DSB, group held out"].idxmin(), display=False)
glue("dsb_worst", float(comparison["DSB, group held out"].min()), display=False)
comparison.round(3)

# %% mystnb={"figure": {"caption": "DSB score per imaging group of the same-budget U-Net: trained on a random split that includes the group (blue) and trained without any image of the group (red).", "name": "fig-unseen-groups"}}
grp.groups_figure(comparison)
plt.show()

# %% [markdown]
# ## The levers
#
# Each training lever changes one thing of the same budget and is trained once per fold
# (cached like the baseline):
#
# - **modality**: colour and stain augmentation (channel shuffle, a per-channel tint that also
#   colours grey images, hue and saturation jitter, random grey conversion and inversion) and
#   sampling balanced across modalities (each drawn by the square root of its share);
# - **scale**: every training image rescaled so that its nuclei (the median equivalent diameter
#   of its annotated masks) are {glue:text}`canonical_diameter:.0f` pixels across, crops zoomed by
#   up to {glue:text}`scale_jitter` either way; at test time the network estimates each image's
#   nucleus size in a first pass, the image is rescaled to the canonical size, segmented, and the
#   labels mapped back to the image's grid;
# - **scale+modality**: both;
# - **separation**: a stronger touching-nuclei signal, the contact zone between nuclei three
#   pixels wide instead of two and weighted three times in the loss;
# - **bfloat16**: the baseline trained in mixed bfloat16 precision (oneDNN on a CPU with
#   AVX-512 BF16 or AMX, as the study's machine has; the speed chapter measures its training
#   throughput): it would be kept if its score holds, since it trains faster.
#
# The `levers` parameter names the ones trained (the cpu run trains all five, about 20 minutes
# each on two cores).
#
# Two inference-only levers are scored on trained models: the images rescaled at inference only
# (**rescaled at inference, N px**: a first pass estimates each image's nucleus size and the image
# is rescaled so that its nuclei are N pixels across), and test-time augmentation. Since a network
# trained at the images' own scales has no one size of its own, the baseline's networks are
# rescaled to four reference sizes, 16 to 28 pixels, to find the one it works best at; the
# `inference_runs` parameter lists the (lever, inference) pairs scored. Stained images (colour
# on a bright background; here the stained-tissue group only) can also be given to the network
# as one channel (**grey input**: their grey level, inverted as a bright-field image is; or
# **hematoxylin input**: the haematoxylin optical density of a colour deconvolution, nuclei
# bright on a dark background as in fluorescence, the eosin-stained tissue around them left out).
# The networks that hold out the stained-tissue group never saw a colour image, so for that group
# this inference option is the same as training with that input. Every row is scored with
# each separation method of the `methods` parameter (in the cpu run connected components and the
# models' own, touching borders; the distance watershed, slowest on large images, is compared in
# the comparison chapter only).

# %%
glue("canonical_diameter", lv.CANONICAL_DIAMETER, display=False)
glue("scale_jitter", lv.SCALE_JITTER, display=False)
runs = [(lever, "plain") for lever in levers] + [tuple(pair) for pair in inference_runs]
trained = lv.run_levers(samples, groups, fold_list, budget, model_cache, runs, methods=methods)
all_levers = pd.concat([baseline, trained], ignore_index=True)
dsb_table = lv.lever_table(all_levers)
by_row = dsb_table[dsb_table["method"] == "borders"].set_index(["lever", "inference"])["mean over groups"]
for lever in lv.TRAINING_LEVERS:
    for inference in [name for name in lv.INFERENCE_OPTIONS if "tta" not in name]:
        # NaN: not scored in this profile
        glue(lv.glue_key(lever, inference), float(by_row.get((lever, inference), float("nan"))), display=False)
dsb_table.round(3)

# %% [markdown]
# The criterion that chooses the settings (training lever and inference option together) is the
# mean DSB score over held-out groups with the models' own separation (borders); the weakest
# group's score is the second column to read.
#
# Test-time augmentation ({glue:text}`tta_views` views) costs that many network passes, so it is
# measured on the chosen lever's first fold only (its held-out images), against the same images
# without it:

# %%
all_levers.to_csv(out / "levers-per-image.csv", index=False)
dsb_table.to_csv(out / "levers-dsb.csv", index=False)
lv.lever_table(all_levers, "iou").to_csv(out / "levers-iou.csv", index=False)
best = lv.best_lever(dsb_table)
glue("best_lever", best["lever"], display=False)
glue("tta_views", tta_views, display=False)
glue("best_inference", best["inference"], display=False)
tta = lv.lever_evaluation(samples, groups, fold_list, budget, model_cache, best["lever"],
                          inference=lv.with_tta(best["inference"], tta_views), methods=methods, only=[0])
chosen = all_levers[(all_levers["lever"] == best["lever"]) & (all_levers["inference"] == best["inference"])]
tta_table = lv.tta_effect(chosen, tta)
tta_table.to_csv(out / "levers-tta.csv", index=False)
borders_tta = tta_table.set_index("method").loc["borders"]
glue("tta_dsb_plain", float(borders_tta["DSB plain"]), display=False)
glue("tta_dsb", float(borders_tta["DSB with TTA"]), display=False)
glue("tta_cost", float(borders_tta["s per image with TTA"] / borders_tta["s per image plain"]), display=False)
tta_table.round(3)

# %% [markdown]
# ## Before and after, per held-out group
#
# The baseline (the shipped configuration at this budget, plain inference) against the chosen
# lever and inference option, both with the borders separation:

# %%
change = lv.before_after(all_levers, ("baseline", "plain", "borders"),
                         (best["lever"], best["inference"], "borders"))
change.to_csv(out / "levers-before-after.csv")
glue("dsb_before", float(change.loc["mean over groups", "DSB before"]), display=False)
glue("dsb_after", float(change.loc["mean over groups", "DSB after"]), display=False)
groups_only = change.drop(index="mean over groups")
glue("weakest_after", groups_only["DSB after"].idxmin(), display=False)
glue("weakest_after_dsb", float(groups_only["DSB after"].min()), display=False)
glue("dsb_gain", float(change.loc["mean over groups", "DSB change"]), display=False)
glue("groups_below", int((groups_only["DSB after"] < 0.30).sum()), display=False)
glue("aim_mean", "reached" if change.loc["mean over groups", "DSB change"] >= 0.10 else "not reached", display=False)
tissue = groups_only[groups_only.index.str.startswith("stained tissue")].mean(numeric_only=True)  # NaN if absent
glue("tissue_dsb_before", float(tissue.get("DSB before", float("nan"))), display=False)
glue("tissue_dsb_after", float(tissue.get("DSB after", float("nan"))), display=False)
change.round(3)

# %% [markdown]
# ### Where the errors are
#
# With the chosen setting, per held-out group: pixel precision and recall, nuclei found per
# annotated nucleus, and the nucleus diameter the first pass estimated against the annotated one
# (medians over images):

# %%
chosen_borders = all_levers[(all_levers["lever"] == best["lever"]) & (all_levers["inference"] == best["inference"])
                            & (all_levers["method"] == "borders")]
errors = lv.error_profile(chosen_borders, samples)
errors.to_csv(out / "levers-errors.csv")
for name, column in (("precision", "pixel precision"), ("recall", "pixel recall"),
                     ("estimated", "estimated diameter (median)"), ("annotated", "annotated diameter (median)")):
    glue(f"brightfield_{name}", float(errors[column].get("brightfield", float("nan"))), display=False)
errors.round(2)

# %% [markdown]
# ## The field's standard: StarDist
#
# A lab choosing a tool asks whether StarDist {cite}`schmidt2018` would do better on its
# images. StarDist is trained here from scratch on each fold (no pretrained weights can be
# downloaded on the study's machines, so its published models are not compared), with the
# U-Net's budget: the same training and validation images, the same preprocessed input, the
# same number of patches of the same size and the same seed, and otherwise StarDist's own
# defaults (32 rays, its U-Net backbone, flips and rotations, its threshold optimisation on the
# validation images). Beside it, the same-budget U-Net at the images' own scale and with the
# setting chosen above; seconds per image as measured when each was scored (different runs, so
# the ratio is rough).

# %%
if stardist:
    star = sc.stardist_grouped_evaluation(samples, groups, fold_list, budget, model_cache, only=stardist_folds)
    star.to_csv(out / "stardist-per-image.csv", index=False)
    chosen_rows = all_levers[(all_levers["lever"] == best["lever"]) & (all_levers["inference"] == best["inference"])
                             & (all_levers["method"] == "borders")]
    same_images = lambda rows: rows[rows["image_id"].isin(star["image_id"])]  # noqa: E731
    contest = sc.side_by_side({"StarDist": star, "U-Net": same_images(per_image),
                               f"U-Net, {best['inference']}": same_images(chosen_rows)})
    contest.to_csv(out / "stardist-vs-unet.csv")
    glue("stardist_groups", float(contest.loc["mean over groups", "StarDist"]), display=False)
    glue("stardist_images", float(contest.loc["mean over images", "StarDist"]), display=False)
    glue("stardist_s", float(contest.loc["s per image", "StarDist"]), display=False)
    glue("stardist_train_min", float(star.groupby("fold")["train_s"].first().mean() / 60), display=False)
    display_table = contest.round(3)
else:
    for key in ("stardist_groups", "stardist_images", "stardist_s", "stardist_train_min"):
        glue(key, float("nan"), display=False)
    display_table = "StarDist not run in this profile"
display_table

# %% [markdown]
# ## The shipped model
#
# The shipped model (chapter 2) is the baseline's configuration trained longer on the random
# split's training images, so the setting chosen here applies to it only if it is an inference
# option of the baseline. Where it is, the model ships with that reference diameter, and this
# table, the grouped estimate of its accuracy on imaging conditions it never saw, goes into its
# model card (cpu and gpu profiles):

# %%
shipped_folder = run.shipped("unet-dsb2018")
shipped_config = models.load_config(shipped_folder)
applies = lv.matches_shipped(best, shipped_config)
print(f"chosen: {best['lever']}, {best['inference']}; shipped model: reference diameter {shipped_config.diameter}"
      f" -> {'the shipped model runs the chosen setting' if applies else 'the shipped model does NOT run it'}")
if applies and profile != "smoke":
    card = lv.record_card_estimate(shipped_folder, lv.card_estimate(change, best, len(fold_list)))
    print(f"grouped estimate recorded in {card.parent.name}/{card.name}")

# %% [markdown]
# ## Summary
#
# With whole imaging groups held out, the U-Net's DSB score is {glue:text}`dsb_groups_mean:.3f`
# averaged over the {glue:text}`n_groups` groups ({glue:text}`dsb_images_mean:.3f` averaged over
# images), against {glue:text}`dsb_random:.3f` on the random split's test images. The weakest
# group, {glue:text}`dsb_worst_group`, scores {glue:text}`dsb_worst:.3f` when unseen.
#
# Of the settings measured at the same budget, **{glue:text}`best_lever`** trained and
# **{glue:text}`best_inference`** scores best: mean DSB over held-out groups
# {glue:text}`dsb_before:.3f` before, {glue:text}`dsb_after:.3f` after. Two levers help, and
# both work at inference. Nucleus scale matters most: the baseline's networks, trained at the
# images' own scales, with each image rescaled so that its nuclei are 16, 20, 24 or 28 pixels
# across, score {glue:text}`mean_baseline_rescaled_at_inference_16_px:.3f`,
# {glue:text}`mean_baseline_rescaled_at_inference_20_px:.3f`,
# {glue:text}`mean_baseline_rescaled_at_inference_24_px:.3f` and
# {glue:text}`mean_baseline_rescaled_at_inference_28_px:.3f`: a broad optimum from 20 pixels up,
# and every fluorescence group gains. The colour of stained images matters for the stained-tissue
# group: rescaled to 24 pixels, with stained images given as grey the networks score
# {glue:text}`mean_baseline_rescaled_at_inference_24_px_grey_input:.3f`, and given as their
# haematoxylin channel {glue:text}`mean_baseline_rescaled_at_inference_24_px_hematoxylin_input:.3f`;
# stained tissue goes from {glue:text}`tissue_dsb_before:.3f` (baseline) to
# {glue:text}`tissue_dsb_after:.3f`, the only change measured here that moves that group much
# (the other groups have no colour images and keep their scores). On the random split's test
# images the shipped network saw stained tissue in colour, and there the haematoxylin input
# costs the stained images DSB (chapter 2): a network trained on that channel is the next step.
#
# Training at one size as well (the scale lever, 20 pixels) gives {glue:text}`mean_scale_plain:.3f`,
# less than rescaling at inference: at this budget the network that saw nuclei of every size
# copes better with the estimate's errors. Colour and stain augmentation with modality-balanced
# sampling did not help on average, alone ({glue:text}`mean_modality_plain:.3f`; rescaled at
# inference {glue:text}`mean_modality_rescaled_at_inference_20_px:.3f`) or on top of scale
# ({glue:text}`mean_scale_modality_plain:.3f`). The stronger touching-border signal (separation
# lever) hurts at the images' own scale ({glue:text}`mean_separation_plain:.3f`; its worst loss is
# the 360x360 fluorescence group) and does not beat the baseline when rescaled
# ({glue:text}`mean_separation_rescaled_at_inference_20_px:.3f`). Trained in bfloat16, the baseline
# scores {glue:text}`mean_bfloat16_plain:.3f` at the images' own scale and
# {glue:text}`mean_bfloat16_rescaled_at_inference_24_px:.3f` rescaled to 24 pixels, against
# {glue:text}`mean_baseline_plain:.3f` and {glue:text}`mean_baseline_rescaled_at_inference_24_px:.3f`
# in float32: lower both ways. Each is one training with one seed, so this mixes the precision
# with the seed-to-seed spread of 1,200-step trainings, which this chapter does not measure; the
# shipped model stays float32. Test-time augmentation moves the chosen setting's first fold from
# {glue:text}`tta_dsb_plain:.3f` to {glue:text}`tta_dsb:.3f` at {glue:text}`tta_cost:.1f` times the
# time per image (eight views plus the size pass cost about nine network passes): too little for
# its price, so it stays an option (`--tta`).
#
# The shipped model therefore keeps its weights and now, by default, rescales images so that
# nuclei are 24 pixels across and gives stained images as their haematoxylin channel; its model
# card carries the per-group estimate above. On the random split's test images, from the
# training experiments, both settings cost DSB (chapter 2): the gain is for images unlike the
# training set, which is what a lab brings (`--diameter none --colour-input rgb` gives the
# previous behaviour).
#
# StarDist, trained from scratch with the same budget, scores {glue:text}`stardist_groups:.3f`
# averaged over held-out groups ({glue:text}`stardist_images:.3f` over images), below the U-Net
# with or without rescaling in every group but bright field (where every model fails); its
# largest losses are the 360x360 and 520x696 fluorescence groups. It takes
# {glue:text}`stardist_s:.2f` s per image ({glue:text}`stardist_train_min:.0f` minutes of training
# per fold, timed while other work shared the machine). This says how the two compare at a laptop's budget of 1,200 steps, not at StarDist's
# usual training (hundreds of epochs) or with its published pretrained models, which cannot be
# downloaded here.
#
# What is still wrong: bright-field images and stained tissue stay below 0.30 with every lever
# measured here ({glue:text}`weakest_after` is the weakest group after, at
# {glue:text}`weakest_after_dsb:.3f`). On bright field the network takes whole cells for nuclei:
# inverted, a bright-field cell's cytoplasm is bright as well as its nucleus, so the pixel recall
# is {glue:text}`brightfield_recall:.2f` and the precision {glue:text}`brightfield_precision:.2f`,
# and the first pass estimates nuclei of {glue:text}`brightfield_estimated:.0f` pixels where the
# annotated ones are {glue:text}`brightfield_annotated:.0f`. A network that never saw a bright-field
# image cannot tell which of two bright structures is the nucleus, and colour jitter of
# fluorescence images does not teach it. The aim set for this work (mean over groups at least
# 0.10 above the baseline, no group below 0.30) is {glue:text}`aim_mean` for the mean
# (+{glue:text}`dsb_gain:.3f`) and not for the weakest groups ({glue:text}`groups_below` groups
# below 0.30).
