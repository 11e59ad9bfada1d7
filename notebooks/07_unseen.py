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
# # Images the network never saw: whole imaging groups held out
#
# The paper's split, like every random split of the Data Science Bowl images, puts images of
# the same experiment (same microscope, stain and image size) in training and test alike, so
# its test score says how well the network knows *these* experiments. A lab brings images of
# its own, from conditions the network never saw; the competition's second stage was built
# around that {cite}`caicedo2019`. This chapter measures it inside the study: the 664 images
# are grouped into imaging experiments, and each group is scored by a network trained without
# any image of it. The numbers here are the baseline that any change to the shipped model's
# training has to beat.
#
# **Prerequisites:** the data chapter (manifest) and the comparison chapter (the same-budget
# U-Net on the random split, the reference for each group).

# %% tags=["parameters"]
profile = "cpu"
artefacts = "artefacts/cpu"
seed = 42
max_images = None
folds = 3
crop = 128
batch_size = 8
epochs = 20
steps_per_epoch = 60
patience = 12
max_minutes = 20.0

# %%
import matplotlib.pyplot as plt
import pandas as pd
from myst_nb import glue

from nucleilib import training
from nucleilib.study import chapter, groups as grp
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
budget = training.TrainConfig(crop=crop, batch_size=batch_size, epochs=epochs, steps_per_epoch=steps_per_epoch,
                              patience=patience, max_minutes=max_minutes, seed=seed)
per_image = grp.grouped_evaluation(samples, groups, fold_list, budget, model_cache, name="grouped-unet")
per_image.to_csv(out / f"grouped-unet-{len(fold_list)}folds-per-image.csv", index=False)
held_out = grp.group_summary(per_image)
held_out.to_csv(out / f"grouped-unet-{len(fold_list)}folds-summary.csv")
held_out.round(3)

# %% [markdown]
# ## Held out against the random split
#
# The same network and budget trained on the random ("original") split scores the test images
# of that split; {numref}`fig-unseen-groups` sets each group's held-out score against it (the
# random split has only a few test images of the small groups, so those bars are rough).

# %%
random_split = grp.random_split_by_group(pd.read_csv(out / "comparison-per-image.csv"), groups)
comparison = grp.held_out_against_random(held_out, random_split)
glue("dsb_groups_mean", float(held_out.loc["mean over groups", "DSB"]), display=False)
glue("dsb_images_mean", float(held_out.loc["mean over images", "DSB"]), display=False)
glue("dsb_random", float(pd.read_csv(out / "comparison-table1.csv").set_index("model").loc["U-Net", "DSB score"]),
     display=False)
glue("dsb_worst_group", comparison["DSB, group held out"].idxmin(), display=False)
glue("dsb_worst", float(comparison["DSB, group held out"].min()), display=False)
comparison.round(3)

# %% mystnb={"figure": {"caption": "DSB score per imaging group of the same-budget U-Net: trained on a random split that includes the group (blue) and trained without any image of the group (red).", "name": "fig-unseen-groups"}}
grp.groups_figure(comparison)
plt.show()

# %% [markdown]
# ## Summary
#
# With whole imaging groups held out, the U-Net's DSB score is {glue:text}`dsb_groups_mean:.3f`
# averaged over the {glue:text}`n_groups` groups ({glue:text}`dsb_images_mean:.3f` averaged over
# images), against {glue:text}`dsb_random:.3f` on the random split's test images. The weakest
# group, {glue:text}`dsb_worst_group`, scores {glue:text}`dsb_worst:.3f` when unseen. These are
# the numbers a lab with images from new conditions should expect from this training, and the
# baseline for the levers still to be measured under this protocol (rescaling to a canonical
# nucleus size, colour and stain augmentation, sampling balanced across groups, a stronger
# separation signal, test-time augmentation); none of them has been measured yet.
