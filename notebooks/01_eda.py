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
# # Exploring the data
#
# This chapter reads the 2018 Data Science Bowl training set {cite}`caicedo2019`, merges each
# image's nucleus masks into one binary mask and one instance label image, and measures what
# the seed paper {cite}`gautam2025` reports about the data: image sizes, nuclei per image,
# nucleus area and circularity, contrast and intensity, and how often nuclei touch. It ends
# with the stratified train/validation/test splits that every later chapter uses.
# Each of the paper's figures sits beside ours, with a verdict where they disagree.

# %% tags=["parameters"]
profile: str = "cpu"
artefacts: str = "artefacts/lab"  # a scratch copy of the profile's artefacts; `nuclei study` passes artefacts/<profile>
seed: int = 42
max_images: "Optional[int]" = None  # None: the whole set; a number: a random subset of that size
measure_load_time: bool = True
load_time_sample: "Optional[int]" = 100  # None: time the whole set (the cold load decodes every PNG again)

# %%
import json
import warnings

import matplotlib.pyplot as plt
import seaborn as sns
from myst_nb import glue

from nucleilib import data, morphology
from nucleilib.plotting import outline_overlay
from nucleilib.study import chapter, eda
from nucleilib.study import manifest as mf

run = chapter.setup(profile, artefacts)
root, out = run.root, run.out
run.facts()

# %% [markdown]
# ## Loading and consolidating the masks
#
# Each sample folder holds one image and one binary PNG per nucleus. Following the paper, the
# nucleus masks are merged by pixel-wise maximum into one foreground mask; we also keep an
# instance label image (nucleus *k* has value *k*), which the counts, the touching-nuclei
# measure and the instance score of later chapters need. Where two masks claim the same pixel,
# the first keeps it and the loader warns.

# %%
data_dir = data.data_root()
all_ids = [folder.name for folder in data.sample_folders(data_dir)]
ids = eda.pick_ids(all_ids, max_images, seed)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # overlaps are listed below
    samples = data.load_dataset(data_dir, ids=ids)
overlapping = eda.overlap_table(samples)
glue("n_overlapping_images", len(overlapping), display=False)
print(f"{len(samples)} of {len(all_ids)} images, {sum(s.n_nuclei for s in samples)} nuclei loaded")
print(f"images in which a mask overlaps an earlier one: {len(overlapping)}")
overlapping

# %% [markdown]
# The data set's README says its masks do not overlap; the loader finds the few images where
# one does ({glue:text}`n_overlapping_images` here). They are too few to matter for the statistics below, but they
# are why the loader checks rather than assumes.
#
# How long loading takes, cold (decoding every PNG) and from the decoded cache (one `.npz` per
# image), for a random sample of the images (the cold load of all of them takes half a minute),
# scaled to the whole set:

# %%
if measure_load_time:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        timing = data.time_loading(data_dir, sample_size=load_time_sample, seed=seed)
    (out / "load-timing.json").write_text(json.dumps(timing, indent=2))
    scale = timing["n_total"] / timing["n_images"]
    print(f"{timing['n_images']:.0f} of {timing['n_total']:.0f} images: cold load {timing['cold_s']:.1f} s, "
          f"cached load {timing['cached_s']:.2f} s; for the whole set about {timing['cold_s'] * scale:.0f} s cold, "
          f"{timing['cached_s'] * scale:.1f} s cached")
else:
    print("load timing skipped in this profile")

# %% [markdown]
# ## The manifest: sizes, modalities, density
#
# One row per image. The modality is derived from the pixels: colour images are stained tissue;
# grey images are brightfield when their median grey level is above one half, fluorescence
# otherwise. The density bin is the tercile of the nuclei count. {numref}`fig-eda-sizes` shows
# the image sizes by modality.

# %%
manifest = mf.build_manifest(samples)
manifest.to_csv(out / "manifest.csv", index=False)
images, nuclei = eda.add_modality(*morphology.eda_tables(samples), manifest)
images.to_csv(out / "eda-images.csv", index=False)
manifest.head()

# %% mystnb={"figure": {"caption": "Image sizes (height x width in pixels) of the data set, stacked by modality.", "name": "fig-eda-sizes"}}
sizes = eda.size_counts(manifest)
ax = sizes.plot.barh(stacked=True, figsize=(7, 4))
ax.invert_yaxis()
ax.set(xlabel="images", ylabel="height x width (px)", title="Image sizes")
plt.tight_layout()
plt.show()

# %%
sizes.assign(total=sizes.sum(axis=1))

# %%
for name, value in eda.modality_facts(manifest).items():
    glue(name, value, display=False)
manifest["modality"].value_counts().to_frame("images")

# %% [markdown]
# ## Nuclei per image
#
# The paper reports a mean of 71 nuclei per image with a standard deviation of 9; ours are in
# {numref}`fig-eda-counts`.

# %% mystnb={"figure": {"caption": "Nuclei per image: histogram stacked by modality (grey band: the paper's 71 +/- 9) and box plots by modality.", "name": "fig-eda-counts"}}
counts = eda.count_summary(images)
for name, value in counts.items():
    glue(name, value, display=False)
paper_mean, paper_sd = eda.PAPER_COUNT
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
sns.histplot(images, x="nuclei", hue="modality", multiple="stack", bins=40, ax=axes[0])
axes[0].axvspan(paper_mean - paper_sd, paper_mean + paper_sd, color="grey", alpha=0.2, label="paper: 71 +/- 9")
axes[0].set(title="Nuclei per image", xlabel="nuclei")
sns.boxplot(images, x="nuclei", y="modality", ax=axes[1])
axes[1].set(title="By modality", xlabel="nuclei", ylabel="")
plt.tight_layout()
plt.show()
print(f"measured: mean {counts['count_mean']:.1f}, SD {counts['count_sd']:.1f}, "
      f"median {counts['count_median']:.0f}, range {images['nuclei'].min()}-{images['nuclei'].max()}")

# %% [markdown]
# ## Nucleus area and circularity
#
# Circularity is $4\pi A / P^2$ (1 for a disc), with the perimeter $P$ from scikit-image's
# region properties. On nuclei of a few pixels the digital perimeter is too short and the
# ratio exceeds 1; those values are clipped to 1. The paper reports areas of 8-45 px and
# circularities of 0.6-0.9 without saying which share of nuclei those ranges cover, so we
# give the 5th-95th percentile range and the share of nuclei inside the paper's range
# ({numref}`fig-eda-shape`).

# %% mystnb={"figure": {"caption": "Nucleus area (log scale) and circularity of every annotated nucleus, stacked by modality; grey bands: the paper's ranges.", "name": "fig-eda-shape"}}
shape = eda.shape_summary(nuclei)
for name, value in shape.items():
    glue(name, value, display=False)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
sns.histplot(nuclei, x="area", hue="modality", multiple="stack", log_scale=True, bins=50, ax=axes[0])
axes[0].axvspan(*eda.PAPER_AREA, color="grey", alpha=0.25)
axes[0].set(title="Nucleus area (grey band: paper's 8-45 px)", xlabel="area (px, log scale)")
sns.histplot(nuclei, x="circularity", hue="modality", multiple="stack", bins=50, ax=axes[1])
axes[1].axvspan(*eda.PAPER_CIRCULARITY, color="grey", alpha=0.25)
axes[1].set(title="Circularity (grey band: paper's 0.6-0.9)", xlabel="4 pi A / P^2")
plt.tight_layout()
plt.show()
print(f"area: median {shape['area_median']:.0f} px, 5th-95th percentile {shape['area_p5']:.0f}-"
      f"{shape['area_p95']:.0f} px, {shape['area_in_paper_pct']:.1f}% of nuclei within 8-45 px")
print(f"circularity: median {shape['circ_median']:.2f}, 5th-95th percentile {shape['circ_p5']:.2f}-"
      f"{shape['circ_p95']:.2f}, {shape['circ_in_paper_pct']:.1f}% of nuclei within 0.6-0.9")

# %% [markdown]
# ## Contrast and intensity
#
# The paper's "normalised contrast" is undefined; we use the Michelson contrast of the 1st and
# 99th grey-level percentiles, $(p_{99} - p_1)/(p_{99} + p_1)$, and the mean grey level on a
# 0-1 scale. The paper reports contrast 0.4-0.9 and mean intensity 0.2-0.8
# ({numref}`fig-eda-contrast`).

# %% mystnb={"figure": {"caption": "Michelson contrast of the 1st and 99th grey-level percentiles and mean grey level per image, stacked by modality; grey bands: the paper's ranges.", "name": "fig-eda-contrast"}}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
sns.histplot(images, x="contrast", hue="modality", multiple="stack", bins=40, ax=axes[0])
axes[0].axvspan(*eda.PAPER_CONTRAST, color="grey", alpha=0.2)
axes[0].set(title="Normalised contrast (grey band: paper)", xlabel="(p99 - p1) / (p99 + p1)")
sns.histplot(images, x="mean_intensity", hue="modality", multiple="stack", bins=40, ax=axes[1])
axes[1].axvspan(*eda.PAPER_INTENSITY, color="grey", alpha=0.2)
axes[1].set(title="Mean intensity (grey band: paper)", xlabel="mean grey level (0-1)")
plt.tight_layout()
plt.show()
for name, value in eda.intensity_summary(images).items():
    glue(name, value, display=False)

# %%
images.groupby("modality")[["contrast", "mean_intensity"]].describe().round(2).T

# %% [markdown]
# ## Touching nuclei
#
# The paper says about 27% of images contain "significant nuclei overlapping". The DSB masks
# do not overlap (bar the few pairs found above), so we measure what matters for separating
# nuclei: a nucleus *touches* another when its 1-pixel dilation (8-neighbourhood) reaches a
# pixel of the other. We report the share of images with at least one touching pair and, since
# one touching pair is hardly "significant", also the share with at least 10% of their nuclei
# touching ({numref}`fig-eda-touching`).

# %% mystnb={"figure": {"caption": "Share of each image's nuclei that touch another nucleus, stacked by modality.", "name": "fig-eda-touching"}}
images["touching_share"] = eda.touching_share(images)
touching = eda.touching_summary(images, nuclei)
for name, value in touching.items():
    glue(name, value, display=False)
fig, ax = plt.subplots(figsize=(6, 3.5))
sns.histplot(images, x="touching_share", hue="modality", multiple="stack", bins=30, ax=ax)
ax.set(title="Share of an image's nuclei that touch another", xlabel="touching nuclei / nuclei")
plt.tight_layout()
plt.show()
print(f"images with any touching nuclei: {touching['touch_any_pct']:.1f}%; with >= 10% of nuclei touching: "
      f"{touching['touch_10_pct']:.1f}%; nuclei that touch another: {touching['nuclei_touching_pct']:.1f}%")

# %%
images.groupby("modality")[["has_touching", "touching_share"]].mean().round(3)

# %% [markdown]
# ## Examples by modality
#
# Two images of each modality with the outlines of their annotated nuclei ({numref}`fig-eda-examples`).

# %% mystnb={"figure": {"caption": "Two images of each modality, drawn with the study's seed, with the outlines of their annotated nuclei in yellow.", "name": "fig-eda-examples"}}
by_id = {s.image_id: s for s in samples}
examples = eda.example_ids(manifest, seed, per_modality=2)
fig, axes = plt.subplots(len(examples), 2, figsize=(8, 3.6 * len(examples)), squeeze=False)
for row, (modality, chosen) in enumerate(examples.items()):
    for col in range(2):
        ax = axes[row, col]
        ax.axis("off")
        if col >= len(chosen):
            continue
        sample = by_id[chosen[col]]
        overlay = outline_overlay(sample.image, sample.labels)
        ax.imshow(overlay)
        ax.set_title(f"{modality}: {sample.n_nuclei} nuclei\n{sample.image_id[:12]}...", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Stratified splits
#
# The paper splits its 740 images 670/10/60 (train/validation/test) and also tries 80-10-10 and
# 70-20-10. We scale each to the size of our set and stratify by modality x density bin: within
# each stratum the images are shuffled with the seed, and test then validation images are drawn
# at evenly spaced positions, so every stratum contributes in proportion to its size. The splits
# are saved as CSV files that the training chapters read.

# %%
paths = mf.save_splits(manifest, out / "splits", seed=seed)
eda.split_counts(paths)

# %% [markdown]
# ## The paper's claims beside our measurements

# %%
claims, numbers = eda.claims_tables(manifest, images, nuclei)
claims.to_csv(out / "eda-claims.csv", index=False)
(out / "eda-claims.json").write_text(json.dumps(numbers, indent=2) + "\n")
claims.style.hide(axis="index")

# %% [markdown]
# ## Findings
#
# Over {glue:text}`n_images` images and {glue:text}`n_nuclei` nuclei, an image holds
# {glue:text}`count_mean:.1f` nuclei on average (SD {glue:text}`count_sd:.1f`, median
# {glue:text}`count_median:.0f`), not the paper's 71 +/- 9: the spread is far wider than the
# paper states. Nuclei are much larger than 8-45 px (median {glue:text}`area_median:.0f` px;
# only {glue:text}`area_in_paper_pct:.1f`% fall in the paper's range), and
# {glue:text}`touch_any_pct:.1f`% of images have at least one pair of touching nuclei
# ({glue:text}`touch_10_pct:.1f`% have a tenth or more of their nuclei touching) against the
# paper's 27%, so separating touching nuclei is the rule rather than the exception.
