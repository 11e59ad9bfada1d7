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
# # The U-Net: training and honest evaluation
#
# This chapter trains the seed paper's U-Net {cite}`ronneberger2015,gautam2025` on the training
# split made in the previous chapter, evaluates it on the held-out test images at full
# resolution, with pixel metrics (the paper's) and the official Data Science Bowl instance score
# {cite}`caicedo2019` (which the paper does not report), compares three ways of separating
# touching nuclei, tests the paper's Gaussian pre-filter, and ships the trained model with the
# package so that `nuclei predict` can use it.

# %% tags=["parameters"]
profile = "cpu"
artefacts = "artefacts/cpu"
seed = 42
max_images = None
split = "original"
crop = 128
batch_size = 8
epochs = 60
steps_per_epoch = 100
patience = 12
max_minutes = 27.0
ablation_minutes = 6.0
ablation_steps = 60
ship_model = True

# %%
import json
import warnings
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf
from myst_nb import glue

from nucleilib import data, evaluation, models, segmenter, training
from nucleilib.plotting import outline_overlay
from nucleilib.study import chapter, manifest as mf
from nucleilib.study.runner import run_info

run = chapter.setup(profile, artefacts)
root, out, model_cache = run.root, run.out, run.models
run.facts()

# %% [markdown]
# ## Data and split
#
# The split file comes from the data chapter: stratified by modality and nucleus density, and
# scaled from the paper's 670/10/60 to our image count.

# %%
split_ids = mf.load_split(out / "splits" / f"split-{split}.csv")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    samples = {s.image_id: s for s in data.load_dataset(data.data_root(), ids=sum(split_ids.values(), []))}
train_samples = [samples[i] for i in split_ids["train"]]
val_samples = [samples[i] for i in split_ids["val"]]
test_samples = [samples[i] for i in split_ids["test"]]
manifest = pd.read_csv(out / "manifest.csv").set_index("image_id")
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
info = json.loads((result.folder / "train-config.json").read_text())
history = result.history
glue("train_minutes", info["seconds"] / 60, display=False)
glue("epochs_run", info["epochs_run"], display=False)
glue("best_epoch", info["best_epoch"], display=False)
glue("crops_per_s", info["train_crops_per_s"], display=False)
print(f"{'reloaded' if result.reused else 'trained'}: {info['epochs_run']} epochs in {info['seconds'] / 60:.1f} min "
      f"({info['train_crops_per_s']} crops/s), best epoch {info['best_epoch']}, "
      f"stopped by the time budget: {info['stopped_by_time']}, precision: {info['precision_policy']}")

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

# %%
metrics, test_probs = segmenter.evaluate_model(model, model_config, test_samples, keep_probabilities=True)
metrics = metrics.merge(manifest[["modality"]], left_on="image_id", right_index=True)
metrics.to_csv(out / "unet-test-metrics.csv", index=False)
by_method = metrics.groupby("method")[["dsb_score", "ap50", "f1_50", "iou", "dice"]].mean()
winner = by_method["dsb_score"].idxmax()
glue("winner", winner, display=False)
by_method.round(3).sort_values("dsb_score", ascending=False)

# %%
chosen = metrics[metrics["method"] == winner]
truth_masks = [s.labels > 0 for s in test_samples]
pred_masks = [test_probs[s.image_id][..., 0] > model_config.threshold for s in test_samples]
micro = evaluation.pixel_metrics_micro(list(zip(pred_masks, truth_masks)))
rows = []
for column in ["accuracy", "precision", "recall", "iou", "dice", "mean_iou", "dsb_score", "ap50", "f1_50"]:
    values = chosen[column].to_numpy()
    lo, hi = evaluation.bootstrap_ci(values, seed=seed)
    rows.append({
        "metric": column,
        "micro (pixels pooled)": getattr(micro, column) if hasattr(micro, column) else np.nan,
        "per-image mean": values.mean(),
        "95% CI low": lo,
        "95% CI high": hi,
    })
summary = pd.DataFrame(rows).set_index("metric")
summary.to_csv(out / "unet-test-summary.csv")
for column in ["accuracy", "precision", "recall", "iou", "dice", "mean_iou", "dsb_score", "ap50"]:
    glue(f"test_{column}", float(summary.loc[column, "per-image mean"]), display=False)
    glue(f"test_{column}_lo", float(summary.loc[column, "95% CI low"]), display=False)
    glue(f"test_{column}_hi", float(summary.loc[column, "95% CI high"]), display=False)
for column in ["accuracy", "precision", "recall", "iou"]:
    glue(f"micro_{column}", float(summary.loc[column, "micro (pixels pooled)"]), display=False)
count_error = chosen["count_error"].abs().mean()
glue("count_abs_error", float(count_error), display=False)
glue("infer_ms", 1000 * float(chosen["predict_s"].median()), display=False)
summary.round(3)

# %% [markdown]
# Next to the paper's Table 1 row for its U-Net (accuracy 97.5%, precision 94.5%, recall 95.1%,
# IoU 0.882) and the Kaggle starter's official score of 0.277:

# %%
paper = {"accuracy": 0.975, "precision": 0.945, "recall": 0.951, "iou": 0.882}
comparison = pd.DataFrame({
    "seed paper": pd.Series(paper),
    "ours, micro": summary["micro (pixels pooled)"].reindex(list(paper)),
    "ours, per-image mean": summary["per-image mean"].reindex(list(paper)),
})
comparison.loc["DSB score"] = [np.nan, np.nan, summary.loc["dsb_score", "per-image mean"]]
comparison.round(3)

# %% [markdown]
# ### By modality

# %%
per_modality = chosen.groupby("modality").agg(
    images=("image_id", "count"), iou=("iou", "mean"), dice=("dice", "mean"),
    dsb_score=("dsb_score", "mean"), count_error=("count_error", "mean"),
)
per_modality.round(3)

# %% [markdown]
# ## What the predictions look like
#
# For a few training and test images: the image, the annotation, the image with the predicted
# nuclei outlined in yellow, the errors (green: missed nucleus pixels, magenta: false
# positives), and the network's foreground probability as a confidence map
# ({numref}`fig-unet-train-examples` and {numref}`fig-unet-test-examples`).

# %%
def show_examples(chosen_samples, title, probs_by_id=None):
    seg = segmenter.Segmenter.from_keras(model, model_config)
    fig, axes = plt.subplots(len(chosen_samples), 5, figsize=(17, 3.4 * len(chosen_samples)), squeeze=False)
    for row, sample in enumerate(chosen_samples):
        probs = (probs_by_id or {}).get(sample.image_id)
        if probs is None:
            probs = seg.probabilities(sample.image)
        labels = seg.labels(probs, winner)
        truth = sample.labels > 0
        errors = np.zeros(truth.shape + (3,))
        errors[truth & (labels == 0)] = (0, 0.8, 0)
        errors[~truth & (labels > 0)] = (0.9, 0, 0.9)
        outlined = outline_overlay(sample.image, labels)
        panels = [(sample.image, "image"), (truth, f"truth: {sample.n_nuclei} nuclei"),
                  (outlined, f"prediction: {labels.max()} nuclei"), (errors, "errors"),
                  (probs[..., 0], "foreground probability")]
        for ax, (panel, name) in zip(axes[row], panels):
            ax.imshow(panel, cmap="magma" if name.startswith("foreground") else "gray", vmin=0, vmax=1 if panel.dtype != np.uint8 else 255)
            ax.set_title(name, fontsize=9)
            ax.axis("off")
        axes[row, 0].set_ylabel(manifest.loc[sample.image_id, "modality"])
    fig.suptitle(title)
    plt.tight_layout()
    plt.show()


# %% mystnb={"figure": {"caption": "Two training images: image, annotation, predicted nuclei outlined in yellow, errors (green: missed nucleus pixels, magenta: false positives) and foreground probability.", "name": "fig-unet-train-examples"}}
rng = np.random.default_rng(seed)
show_examples([train_samples[i] for i in rng.choice(len(train_samples), 2, replace=False)], "training images")

# %% mystnb={"figure": {"caption": "The test images with the worst, the median and the best DSB score, with the same panels as the training images.", "name": "fig-unet-test-examples"}}
hard = chosen.sort_values("dsb_score")
picks = [hard["image_id"].iloc[0], hard["image_id"].iloc[len(hard) // 2], hard["image_id"].iloc[-1]]
show_examples([samples[i] for i in picks], "test images: the worst, the median and the best DSB score", test_probs)

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
ablation = []
for sigma in (0.0, 1.5):
    short = training.with_model(
        training.TrainConfig(model=model_config, crop=crop, batch_size=batch_size, epochs=epochs,
                             steps_per_epoch=ablation_steps, patience=patience, max_minutes=ablation_minutes, seed=seed),
        sigma=sigma,
    )
    trained = training.train(short, train_samples, val_samples, model_cache, name=f"ablation-sigma{sigma}")
    scores, _ = segmenter.evaluate_model(trained.model, short.model, test_samples, methods=[winner])
    ablation.append({"sigma": sigma, "epochs": len(trained.history),
                     "test IoU": scores["iou"].mean(), "test DSB score": scores["dsb_score"].mean()})
ablation = pd.DataFrame(ablation).set_index("sigma")
glue("ablation_iou_0", float(ablation.loc[0.0, "test IoU"]), display=False)
glue("ablation_iou_15", float(ablation.loc[1.5, "test IoU"]), display=False)
ablation.round(3)

# %% [markdown]
# ## The shipped model
#
# The model evaluated above is saved inside the package (float16 weights) with its
# configuration and a model card, so that `nucleilib.models.load_model("unet-dsb2018")` and
# `nuclei predict` use it. Only the `cpu` and `gpu` profiles write it.

# %%
shipped = models.PRETRAINED_DIR / "unet-dsb2018"
card = {
    "name": "unet-dsb2018",
    "data": "DSB2018 stage1_train, community-fixed (664 images), CC0",
    "split": split, "train_images": len(train_samples), "val_images": len(val_samples), "test_images": len(test_samples),
    "profile": profile, "epochs_run": info["epochs_run"], "best_epoch": info["best_epoch"],
    "training_minutes": round(info["seconds"] / 60, 1), "parameters": int(model.count_params()),
    "separation": winner,
    "test_metrics_per_image_mean": {k: round(float(v), 4) for k, v in summary["per-image mean"].items()},
    "commit": run_info()["git commit"], "date": run_info()["date (UTC)"],
    "training_config": config.as_dict(),
}
if ship_model and profile != "smoke":
    import dataclasses
    final_config = dataclasses.replace(model_config, separation=winner)
    models.save_model(model, final_config, shipped, card=card, float16=True)
    size = sum(p.stat().st_size for p in shipped.iterdir())
    reloaded, _ = models.load_model("unet-dsb2018")
    check, _ = segmenter.evaluate_model(reloaded, final_config, test_samples[:5], methods=[winner])
    print(f"shipped to {shipped.relative_to(root)} ({size / 1e6:.1f} MB); float16 reload, DSB on 5 test images: "
          f"{check['dsb_score'].mean():.3f} vs {chosen.set_index('image_id').loc[check['image_id'], 'dsb_score'].mean():.3f} in float32")
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
# 0.975, 0.945, 0.951 and 0.882.
