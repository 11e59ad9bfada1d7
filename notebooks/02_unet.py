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
# # The U-Net: training and honest evaluation
#
# This chapter trains the seed paper's U-Net {cite}`ronneberger2015,gautam2025` on the training
# split made in the previous chapter, evaluates it on the held-out test images at full
# resolution, with pixel metrics (the paper's) and the official Data Science Bowl instance score
# {cite}`caicedo2019` (which the paper does not report), compares three ways of separating
# touching nuclei, tests the paper's Gaussian pre-filter, and ships the trained model with the
# package so that `nuclei predict` can use it.

# %% tags=["parameters"]
profile: str = "cpu"
artefacts: str = "artefacts/lab"  # a scratch copy of the profile's artefacts; `nuclei study` passes artefacts/<profile>
seed: int = 42
max_images: "Optional[int]" = None
split: str = "original"
crop: int = 128
batch_size: int = 8
epochs: int = 60
steps_per_epoch: int = 100
patience: int = 12
max_minutes: float = 27.0
ablation_minutes: float = 6.0
ablation_steps: int = 60
ship_model: bool = True
ship_diameter: float = 24.0
ship_colour_input: str = "hematoxylin"

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf
from myst_nb import glue

from nucleilib import models, segmenter, training
from nucleilib.study import chapter, comparison as cmp, manifest as mf, scores, unet

run = chapter.setup(profile, artefacts)
root, out, model_cache = run.root, run.out, run.models
run.facts()

# %% [markdown]
# ## Data and split
#
# The split file comes from the data chapter: stratified by modality and nucleus density, and
# scaled from the paper's 670/10/60 to our image count.

# %%
split_ids, samples = mf.load_split_samples(out, split)
train_samples = [samples[i] for i in split_ids["train"]]
val_samples = [samples[i] for i in split_ids["val"]]
test_samples = [samples[i] for i in split_ids["test"]]
manifest = mf.load_manifest(out)
pd.DataFrame({name: [len(ids)] for name, ids in split_ids.items()}, index=["images"])

# %% [markdown]
# ## The network
#
# The paper describes contracting blocks of convolution, batch normalisation and ReLU with a
# residual connection, max pooling, an expanding path of transposed convolutions with
# concatenated skips, and about 1.94 million parameters. A plain U-Net of base width 16 and
# depth 4 (the well-known Keras starter for this competition) has exactly 1,941,105; adding
# batch normalisation and 1x1 residual shortcuts, as the paper's text says, gives about 2.03
# million. We build the latter, with two output channels: the nucleus foreground and a
# "touching border" (pixels of a nucleus within two pixels of another), a separation signal
# in the spirit of the competition's winning entries.

# %% tags=["scroll-output"]
plain = models.build_unet(models.ModelConfig(residual=False, batch_norm=False, outputs=("foreground",)))
model_config = models.ModelConfig(residual=True, batch_norm=True, outputs=("foreground", "border"))
ours = models.build_unet(model_config)
glue("params_plain", plain.count_params(), display=False)
glue("params_ours", ours.count_params(), display=False)
print(f"plain U-Net (no BN, no shortcuts, one output): {plain.count_params():,} parameters")
print(f"this study's U-Net (BN, residual shortcuts, two outputs): {ours.count_params():,} parameters\n")
ours.summary(line_length=110)
del plain, ours

# %% [markdown]
# ## Training
#
# Random crops of the full-resolution training images (no resizing), rotated by a random angle
# (0-360 degrees; the mask with nearest-neighbour interpolation), flipped, and jittered in
# brightness and contrast, all inside a parallel `tf.data` pipeline. Loss: binary cross-entropy
# plus Dice on each output; Adam at 1e-3, halved when the validation loss stalls; early
# stopping on the validation loss, keeping the best epoch (the validation split holds only a
# handful of images, so its IoU jumps from epoch to epoch and stops training too early, while
# the loss trends smoothly); a wall-time budget per profile. A
# model trained before with the same configuration and data is reloaded instead of retrained.
# {numref}`fig-unet-curves` shows the learning curves.

# %%
config = training.TrainConfig(
    model=model_config, crop=crop, batch_size=batch_size, epochs=epochs,
    steps_per_epoch=steps_per_epoch, patience=patience, max_minutes=max_minutes, seed=seed,
)
result = training.train(config, train_samples, val_samples, model_cache, name=f"unet-{split}")
model = result.model
info = cmp.train_info(result)
history = result.history
for key, value in unet.training_glue(info).items():
    glue(key, value, display=False)
print(unet.training_message(result.reused, info))

# %% mystnb={"figure": {"caption": "Learning curves: loss (BCE + Dice), pixel accuracy and foreground IoU per epoch on the augmented training crops and on the validation tiles; dotted line: the kept epoch.", "name": "fig-unet-curves"}}
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
for ax, metric, label in zip(axes, ["loss", "accuracy", "iou"], ["loss (BCE + Dice)", "pixel accuracy", "foreground IoU"]):
    ax.plot(history["epoch"], history[metric], label="training crops")
    ax.plot(history["epoch"], history[f"val_{metric}"], label="validation tiles")
    ax.axvline(info["best_epoch"], color="grey", ls=":", label=f"kept epoch (best {info['monitor']})")
    ax.set(xlabel="epoch", title=label)
axes[0].legend()
plt.tight_layout()
plt.show()

# %%
best = history.iloc[info["best_epoch"] - 1]
glue("val_iou_best", float(best["val_iou"]), display=False)
glue("val_acc_best", float(best["val_accuracy"]), display=False)
history.assign(lr=history["lr"].map("{:.1e}".format)).round(4).tail(5)

# %% [markdown]
# ## Evaluation on the test images
#
# Every test image is predicted at full resolution (padded to a multiple of 16, or tiled with
# overlap when large) and cropped back. Pixel metrics come both *micro* (all test pixels
# pooled) and as the *per-image mean*; "IoU" is the foreground IoU and "mean IoU" the average of
# the foreground and background IoUs, since the paper does not say which it reports. The
# instance metrics need nuclei, not pixels: the DSB score averages, over IoU thresholds
# 0.50-0.95, the share TP/(TP+FP+FN) of matched nuclei. Intervals are bootstrap 95% intervals
# over test images.
#
# Three ways of turning probabilities into nuclei are compared: connected components of the
# thresholded foreground; a watershed on the distance transform; and a watershed seeded by the
# foreground minus the predicted touching borders.
#
# Like the trained models, the scores are cached (`artefacts/<profile>/scores/`, named by a
# digest of the weights, settings and images): re-executing the chapter reads them instead of
# segmenting the test images again; `nuclei study --rescore` segments again, and
# `nuclei study --verify` always does and compares the result with the committed scores.

# %%
metrics, test_probs = run.scores.evaluate(model, model_config, test_samples, methods=segmenter.SEPARATION_METHODS)
micro = scores.micro_from_counts(metrics)
metrics = scores.without_counts(metrics).merge(manifest[["modality"]], left_on="image_id", right_index=True)
metrics.to_csv(out / "unet-test-metrics.csv", index=False)
by_method = unet.method_table(metrics)
winner = unet.best_method(by_method)
glue("winner", winner, display=False)
by_method.round(3).sort_values("dsb_score", ascending=False)

# %%
chosen = metrics[metrics["method"] == winner]
summary = unet.summary_table(chosen, micro, seed=seed)
summary.to_csv(out / "unet-test-summary.csv")
for key, value in unet.summary_glue(summary, chosen).items():
    glue(key, value, display=False)
summary.round(3)

# %% [markdown]
# Next to the paper's Table 1 row for its U-Net (accuracy 97.5%, precision 94.5%, recall 95.1%,
# IoU 0.882) and the Kaggle starter's official score of 0.277:

# %%
unet.paper_comparison(summary).round(3)

# %% [markdown]
# ### Nuclei rescaled to one size
#
# The chapter on unseen imaging groups finds that a network trained at the images' own scales
# does better on imaging conditions it never saw when each image is first rescaled so that its
# nuclei are about {glue:text}`ship_diameter:.0f` pixels across (a first pass of the network
# estimates their size; the labels are mapped back to the image's grid), and that stained
# tissue does better given as its haematoxylin channel (colour deconvolution: nuclei bright on a
# dark background, as in fluorescence) than as colour; so the shipped model does both by default.
# On this split's test images, which come from the training experiments, at its own scale,
# rescaled, and rescaled with stained images given as their {glue:text}`ship_colour_input` channel:

# %%
rescaled = unet.rescaling_effect(model, model_config, test_samples, winner, ship_diameter, metrics,
                                 colour_input=ship_colour_input, scores=run.scores)
rescaled.to_csv(out / "unet-test-rescaled.csv")
shipped_setting = rescaled.columns[-1]
glue("ship_diameter", ship_diameter, display=False)
glue("ship_colour_input", ship_colour_input, display=False)
glue("test_dsb_rescaled", float(rescaled.loc["DSB", shipped_setting]), display=False)
glue("test_iou_rescaled", float(rescaled.loc["IoU", shipped_setting]), display=False)
glue("test_tissue_dsb_own", float(rescaled.loc["DSB, stained tissue", "own scale"]), display=False)
glue("test_tissue_dsb_shipped", float(rescaled.loc["DSB, stained tissue", shipped_setting]), display=False)
glue("rescaled_cost", float(rescaled.loc["s per image", shipped_setting] / rescaled.loc["s per image", "own scale"]),
     display=False)
rescaled.round(3)

# %% [markdown]
# ### By modality

# %%
unet.per_modality(chosen).round(3)

# %% [markdown]
# ## What the predictions look like
#
# For a few training and test images: the image, the annotation, the image with the predicted
# nuclei outlined in yellow, the errors (green: missed nucleus pixels, magenta: false
# positives), and the network's foreground probability as a confidence map
# ({numref}`fig-unet-train-examples` and {numref}`fig-unet-test-examples`).

# %%
seg = segmenter.Segmenter.from_keras(model, model_config)

# %% mystnb={"figure": {"caption": "Two training images: image, annotation, predicted nuclei outlined in yellow, errors (green: missed nucleus pixels, magenta: false positives) and foreground probability.", "name": "fig-unet-train-examples"}}
rng = np.random.default_rng(seed)
shown = [train_samples[i] for i in rng.choice(len(train_samples), 2, replace=False)]
unet.example_figure(seg, shown, winner, manifest["modality"], "training images")
plt.show()

# %% mystnb={"figure": {"caption": "The test images with the worst, the median and the best DSB score, with the same panels as the training images.", "name": "fig-unet-test-examples"}}
picks = unet.example_picks(chosen)
unet.example_figure(seg, [samples[i] for i in picks], winner, manifest["modality"],
                    "test images: the worst, the median and the best DSB score", test_probs)
plt.show()

# %% [markdown]
# ## Filters of the 13th convolution layer
#
# The paper shows the filters of its 13th convolution layer (its Fig. 2). Counting the
# network's 3x3 convolutions in order, ours is printed below; each panel of
# {numref}`fig-unet-filters` is one output filter's kernel averaged over its input channels.

# %% mystnb={"figure": {"caption": "Filters of the network's 13th 3x3 convolution: each panel is one output filter's kernel averaged over its input channels (red positive, blue negative).", "name": "fig-unet-filters"}}
convs = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D)
         and not isinstance(layer, tf.keras.layers.Conv2DTranspose) and layer.kernel_size == (3, 3)]
layer13 = convs[12]
kernel = layer13.get_weights()[0]  # (3, 3, in, out)
print(f"13th 3x3 convolution: {layer13.name}, kernel {kernel.shape}")
n_show = min(32, kernel.shape[-1])
fig, axes = plt.subplots(4, n_show // 4, figsize=(n_show / 4 * 1.3, 5.5))
for k, ax in enumerate(axes.flat):
    ax.imshow(kernel[..., k].mean(axis=-1), cmap="coolwarm")
    ax.axis("off")
fig.suptitle(f"{layer13.name}: mean kernel of the first {n_show} filters")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Does the Gaussian pre-filter help?
#
# The paper smooths every image with a Gaussian of sigma 1.5 before training. Two shorter
# trainings with the same budget, one with and one without the filter, answer whether that
# helps here (the main model above uses no filter).

# %%
ablation = unet.gaussian_ablation(config, train_samples, val_samples, test_samples, model_cache, winner,
                                  steps=ablation_steps, minutes=ablation_minutes, scores=run.scores)
glue("ablation_iou_0", float(ablation.loc[0.0, "test IoU"]), display=False)
glue("ablation_iou_15", float(ablation.loc[1.5, "test IoU"]), display=False)
ablation.round(3)

# %% [markdown]
# ## The shipped model
#
# The model evaluated above is saved inside the package (float16 weights) with its
# configuration and a model card, so that `nucleilib.models.load_model("unet-dsb2018")` and
# `nuclei predict` use it, rescaling images to nuclei of {glue:text}`ship_diameter:.0f` pixels
# and giving stained images as their {glue:text}`ship_colour_input` channel by default
# (`--diameter none` segments at the image's own scale, `--colour-input rgb` keeps the colour, as
# measured above). Only the `cpu` and `gpu` profiles write it.

# %%
if ship_model and profile != "smoke":
    card = unet.shipping_card(split=split, split_ids=split_ids, profile=profile, info=info,
                              parameters=model.count_params(), separation=winner, summary=summary,
                              training_config=config, diameter=ship_diameter, rescaled=rescaled,
                              colour_input=ship_colour_input)
    print(unet.ship_model(model, model_config, winner, card, run.shipped("unet-dsb2018"),
                          test_samples[:5], diameter=ship_diameter, colour_input=ship_colour_input, root=root))
else:
    print(f"profile {profile}: model not shipped")

# %% [markdown]
# ## Findings
#
# Trained for {glue:text}`train_minutes:.1f` minutes ({glue:text}`epochs_run` epochs), the
# U-Net reaches a per-image foreground IoU of {glue:text}`test_iou:.3f`
# (95% CI {glue:text}`test_iou_lo:.3f`-{glue:text}`test_iou_hi:.3f`) and a DSB instance score of
# {glue:text}`test_dsb_score:.3f` ({glue:text}`test_dsb_score_lo:.3f`-{glue:text}`test_dsb_score_hi:.3f`)
# on the test images, with {glue:text}`winner` separation. Pooled over pixels, accuracy is
# {glue:text}`micro_accuracy:.3f`, precision {glue:text}`micro_precision:.3f`, recall
# {glue:text}`micro_recall:.3f` and IoU {glue:text}`micro_iou:.3f`, to set beside the paper's
# 0.975, 0.945, 0.951 and 0.882. Rescaled so that nuclei are {glue:text}`ship_diameter:.0f`
# pixels across, with stained images as their {glue:text}`ship_colour_input` channel, as the
# shipped model works by default, the test images score a DSB of
# {glue:text}`test_dsb_rescaled:.3f` and an IoU of {glue:text}`test_iou_rescaled:.3f`, at
# {glue:text}`rescaled_cost:.1f` times the time per image (the stained-tissue test images alone:
# DSB {glue:text}`test_tissue_dsb_own:.3f` at their own scale in colour,
# {glue:text}`test_tissue_dsb_shipped:.3f` with the shipped settings); the gain these settings
# are shipped for is on imaging conditions outside the training set (chapter 7).
