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
# # Speed and low-resource deployment
#
# The seed paper {cite}`gautam2025` reports an inference time of 99.37 ms per image on an NVIDIA
# RTX 3060, and leaves pruning and quantisation to future work. A dedicated GPU is exactly what
# many small biology labs do not have: for them the question is how fast the network runs on the
# CPU of an ordinary computer, and how much accuracy a smaller, faster model costs. This chapter
# measures the shipped U-Net on this machine's CPU with every inference engine TensorFlow offers
# without new dependencies (Keras `predict`, a `tf.function` call, XLA compilation, TensorFlow
# Lite in float32), quantises it after training (TensorFlow Lite float16 weights, and full int8
# weights and activations calibrated on training crops), checks what quantisation does to the
# accuracy on the test images, measures training throughput with and without the input-pipeline
# and precision options, and ships the quantised model with the package when it costs (almost)
# nothing in accuracy. Pruning is not tried: it needs retraining and the TensorFlow Model
# Optimization toolkit, and unstructured sparsity does not make dense CPU kernels faster.

# %% tags=["parameters"]
profile = "cpu"
artefacts = "artefacts/cpu"
seed = 42
max_images = None
split = "original"
model_name = "unet-dsb2018"
sizes = [256, 512, 1024]
batches = [1, 4, 16]
max_batch_pixels = 16 * 256 * 256
repeats = 3
warmup = 1
tflite_threads = None
test_limit = None
train_images = 48
calibration_crops = 32
calibration_size = 256
train_crop = 128
train_batch_size = 8
train_steps = 8
train_warmup = 2
target_ms = 30.0
max_iou_loss = 0.01
ship_quantised = True

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the TFLite converter's C++ chatter
import time
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm's notebook check, noise here
notebook_start = time.perf_counter()

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import tensorflow as tf
from myst_nb import glue

from nucleilib import backends, data, export, models, training
from nucleilib.study import benchmarks, chapter, manifest as mf

run = chapter.setup(profile, artefacts)
root, out = run.root, run.out
run.facts()

# %% [markdown]
# ## Model, data and threads
#
# The model is the U-Net shipped with the package (trained in the U-Net chapter). Accuracy is
# measured on the test images of the original split, at full resolution; a few training images
# provide the crops that calibrate the int8 quantisation and the batches of the training
# throughput runs (never the test images).

# %%
model, config = models.load_model(model_name)
card = models.model_card(model_name) if (models.PRETRAINED_DIR / model_name / "card.json").is_file() else {}
split_ids = mf.load_split(out / "splits" / f"split-{split}.csv")
test_ids = split_ids["test"][: None if test_limit is None else int(test_limit)]
rng = np.random.default_rng(seed)
train_pick = sorted(rng.choice(split_ids["train"], min(train_images, len(split_ids["train"])), replace=False))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    test_samples = data.load_dataset(data.data_root(), ids=test_ids)
    train_samples = data.load_dataset(data.data_root(), ids=train_pick)
train_config = training.TrainConfig(model=config, crop=train_crop, batch_size=train_batch_size, seed=seed)
train_x, train_y = training.prepare_arrays(train_samples, train_config)
glue("n_test", len(test_samples), display=False)
glue("n_train_used", len(train_samples), display=False)
glue("n_params", int(model.count_params()), display=False)
print(f"{model_name}: {model.count_params():,} parameters; trained under profile {card.get('profile', '?')!r} "
      f"on split {card.get('split', '?')!r}; {len(test_samples)} test images, {len(train_samples)} training images used")

# %% [markdown]
# Every engine runs on all cores. TensorFlow's intra- and inter-op thread pools are left at their
# defaults (0 means "one thread per core"); TensorFlow Lite interpreters are given
# {glue:text}`tflite_threads` thread(s) explicitly (one per core unless the `tflite_threads`
# parameter says otherwise).

# %%
cores = os.cpu_count() or 1
tflite_threads = int(tflite_threads or cores)
bf16 = benchmarks.bfloat16_support()
threads = pd.DataFrame.from_dict({
    "CPU cores (os.cpu_count)": cores,
    "TensorFlow intra-op threads (0 = default, one per core)": tf.config.threading.get_intra_op_parallelism_threads(),
    "TensorFlow inter-op threads (0 = default)": tf.config.threading.get_inter_op_parallelism_threads(),
    "TensorFlow Lite interpreter threads": tflite_threads,
    "CPU has AVX512-BF16": bf16["avx512_bf16"],
    "CPU has AMX-BF16": bf16["amx_bf16"],
    "GPU visible to TensorFlow": bf16["gpu"],
}, orient="index", columns=["value"])
glue("cores", cores, display=False)
glue("tflite_threads", tflite_threads, display=False)
glue("avx512_bf16", "has" if bf16["avx512_bf16"] else "does not have", display=False)
threads

# %% [markdown]
# ## Conversion and quantisation
#
# Three TensorFlow Lite models are made from the Keras one. They keep its free input size, so one
# file serves every image size (any multiple of 16). Before conversion the four 2x2, stride-2
# transposed convolutions are rewritten as 1x1 convolutions followed by a depth-to-space shuffle,
# the same arithmetic (the rewrite is exact), because Keras computes a transposed convolution's
# output shape at run time and TensorFlow Lite's fast CPU kernels (XNNPACK) refuse a graph with
# such shape arithmetic. *float16* stores the weights in half precision (they are expanded to
# float32 when the model loads; the arithmetic stays float32). *int8* is full-integer
# post-training quantisation: int8 weights (per output channel) and int8 activations (per tensor),
# with ranges calibrated on {glue:text}`calibration_crops` random crops of preprocessed training
# images; only the float input and output are converted at the two ends.

# %%
calibration = export.representative_crops(train_x, n=calibration_crops, size=calibration_size, seed=seed)
flat, convert_s = {}, {}
for kind in backends.TFLITE_KINDS:
    start = time.perf_counter()
    flat[kind] = export.to_tflite(model, kind, calibration if kind == "int8" else None)
    convert_s[kind] = time.perf_counter() - start
shipped_dir = models.PRETRAINED_DIR / model_name
sizes_table = pd.DataFrame([
    {"model": "Keras weights, float32 (in memory)", "MB": 4 * model.count_params() / 1e6},
    {"model": "shipped weights.npz (float16, compressed)", "MB": (shipped_dir / "weights.npz").stat().st_size / 1e6},
    *[{"model": f"TFLite {kind}", "MB": len(flat[kind]) / 1e6} for kind in backends.TFLITE_KINDS],
]).set_index("model")
sizes_table["conversion s"] = [np.nan, np.nan] + [convert_s[k] for k in backends.TFLITE_KINDS]
sizes_table.to_csv(out / "speed-sizes.csv")
for kind in backends.TFLITE_KINDS:
    glue(f"mb_{kind}", len(flat[kind]) / 1e6, display=False)
glue("mb_npz", float(sizes_table.loc["shipped weights.npz (float16, compressed)", "MB"]), display=False)
glue("int8_size_ratio", len(flat["float32"]) / len(flat["int8"]), display=False)
glue("calibration_crops", len(calibration), display=False)
sizes_table.round(2)

# %% [markdown]
# ## Inference time
#
# Each engine predicts a batch of random images of each size (the network alone: no
# preprocessing, tiling or post-processing); after {glue:text}`warmup_calls` untimed call(s)
# (tracing, compilation, allocation) the median of {glue:text}`timing_repeats` timed calls is
# reported, as milliseconds per image. A batch is timed at a size when it holds at most
# {glue:text}`max_batch_mpix:.2f` million pixels. The engines take turns at every size and batch,
# so that a change in the machine's load hits them alike. {numref}`fig-speed-timing` plots the
# times against the image size.

# %%
glue("warmup_calls", warmup, display=False)
glue("timing_repeats", repeats, display=False)
glue("max_batch_mpix", max_batch_pixels / 1e6, display=False)
fns = benchmarks.benchmark_predict_fns(model, flat, num_threads=tflite_threads)
grid = benchmarks.timing_grid(sizes, batches, max_batch_pixels)
load_before = os.getloadavg()[0]
timing = benchmarks.time_backends(fns, grid, repeats=repeats, warmup=warmup, channels=config.in_channels)
load_after = os.getloadavg()[0]
load_avg = max(load_before, load_after)
glue("load_avg", load_avg, display=False)
glue("load_note", "busy with other work, so all times are inflated" if load_avg > 1.5 * cores
     else "otherwise quiet", display=False)
print(f"load average (1 min) on {cores} cores: {load_before:.1f} before, {load_after:.1f} after the timing runs")
timing.to_csv(out / "speed-timing.csv", index=False)
labels = list(benchmarks.BENCHMARK_BACKENDS.values())
ms_table = timing.pivot_table(index=["size", "batch"], columns="label", values="ms_per_image")[labels]
ms_table.round(1)

# %% [markdown]
# Speed-up over the project's default engine (a `tf.function` call of the Keras model, which
# `nuclei predict` uses):

# %%
(ms_table.rdiv(ms_table["Keras, tf.function"], axis=0)).round(2)

# %% mystnb={"figure": {"caption": "Milliseconds per image (median) against image side for each inference engine, one panel per batch size, on this run's CPU cores (log scales); dashed: the seed paper's 99.37 ms on an RTX 3060; star: the target time per 256x256 image.", "name": "fig-speed-timing"}}
batch_values = sorted(timing["batch"].unique())
fig, axes = plt.subplots(1, len(batch_values), figsize=(5 * len(batch_values), 4), sharex=True, sharey=True,
                         squeeze=False)
size_ticks = sorted(timing["size"].unique())
palette = dict(zip(labels, sns.color_palette("tab10", len(labels))))
for ax, batch in zip(axes[0], batch_values):
    part = timing[timing["batch"] == batch]
    for label in labels:
        line = part[part["label"] == label].sort_values("size")
        ax.plot(line["size"], line["ms_per_image"], marker="o", label=label, color=palette[label])
    ax.axhline(99.37, color="grey", ls="--", lw=1, label="seed paper, RTX 3060 (99.37 ms)")
    ax.scatter([256], [target_ms], marker="*", s=160, color="black", zorder=5, label=f"target: {target_ms:g} ms at 256x256")
    ax.set(xscale="log", yscale="log", xlabel="image side (pixels)", title=f"batch of {batch}")
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xticks(size_ticks, [str(s) for s in size_ticks])
    ax.set_xlim(min(size_ticks) / 1.25, max(size_ticks) * 1.25)
axes[0, 0].set_ylabel("ms per image (median)")
axes[0, -1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
fig.suptitle(f"U-Net inference on {cores} CPU cores")
plt.tight_layout()
plt.show()

# %%
smallest = min(timing["size"])
at_small = timing[timing["size"] == smallest]
single = at_small[at_small["batch"] == 1].set_index("backend")
best_single = single["ms_per_image"].idxmin()
best_any = at_small.loc[at_small["ms_per_image"].idxmin()]
glue("small_size", int(smallest), display=False)
glue("keras_predict_ms", float(single.loc["keras-predict", "ms_per_image"]), display=False)
glue("keras_ms", float(single.loc["keras", "ms_per_image"]), display=False)
glue("xla_ms", float(single.loc["xla", "ms_per_image"]), display=False)
for kind in backends.TFLITE_KINDS:
    glue(f"tflite_{kind}_ms", float(single.loc[f"tflite-{kind}", "ms_per_image"]), display=False)
glue("int8_speedup", float(single.loc["keras", "ms_per_image"] / single.loc["tflite-int8", "ms_per_image"]), display=False)
glue("best_single_label", benchmarks.BENCHMARK_BACKENDS[best_single], display=False)
glue("best_single_ms", float(single.loc[best_single, "ms_per_image"]), display=False)
glue("best_any_label", str(best_any["label"]), display=False)
glue("best_any_batch", int(best_any["batch"]), display=False)
glue("best_any_ms", float(best_any["ms_per_image"]), display=False)
glue("target_ms", float(target_ms), display=False)
meets = best_any["ms_per_image"] <= target_ms
glue("target_verdict", "meets" if meets else "misses", display=False)
glue("target_factor", float(best_any["ms_per_image"] / target_ms), display=False)
paper_factor = 99.37 / float(single.loc[best_single, "ms_per_image"])
glue("paper_comparison", f"{paper_factor:.2f} times faster than" if paper_factor >= 1
     else f"{1 / paper_factor:.2f} times slower than", display=False)
largest = timing[(timing["size"] == max(timing["size"])) & (timing["batch"] == 1)].set_index("backend")
glue("large_size", int(max(timing["size"])), display=False)
glue("large_keras_ms", float(largest.loc["keras", "ms_per_image"]), display=False)
glue("large_int8_ms", float(largest.loc["tflite-int8", "ms_per_image"]), display=False)
print(f"{smallest}x{smallest}, batch 1: fastest is {benchmarks.BENCHMARK_BACKENDS[best_single]} at "
      f"{single.loc[best_single, 'ms_per_image']:.1f} ms/image; any batch: {best_any['label']} (batch {best_any['batch']}) "
      f"at {best_any['ms_per_image']:.1f} ms/image; target {target_ms:g} ms: {'met' if meets else 'missed'}")

# %% [markdown]
# TensorFlow Lite's thread pool synchronises its threads at every layer, which pays off on idle
# cores but suffers when other programs compete for them. The TensorFlow Lite models once more,
# at {glue:text}`small_size` pixels and batch 1, with one thread and with one per core:

# %%
thread_rows = []
for kind in backends.TFLITE_KINDS:
    for n_threads in sorted({1, cores}):
        t = benchmarks.time_inference(backends.tflite_predict_fn(flat[kind], num_threads=n_threads), smallest, 1,
                                  repeats, warmup, channels=config.in_channels)
        thread_rows.append({"model": f"TFLite {kind}", "threads": n_threads, "ms per image (median)": t.ms_per_image,
                            "ms per image (fastest)": t.min_ms_per_image})
thread_table = pd.DataFrame(thread_rows).set_index(["model", "threads"])
thread_table.to_csv(out / "speed-threads.csv")
glue("int8_one_thread_ms", float(thread_table.loc[("TFLite int8", 1), "ms per image (median)"]), display=False)
glue("int8_all_threads_ms", float(thread_table.loc[("TFLite int8", cores), "ms per image (median)"]), display=False)
thread_table.round(1)

# %% [markdown]
# ## What quantisation costs in accuracy
#
# The test images are segmented with each engine at full resolution (padded to a multiple of 16,
# tiled above 512 pixels), separated with the model's own method and thresholds, and scored
# against the annotations. Besides the scores, the table gives how far each engine's foreground
# and border probabilities move from the Keras ones, and the share of pixels that end up on the
# other side of the foreground threshold; {numref}`fig-speed-quantised` compares the images one by
# one. (TensorFlow Lite float32 only repeats Keras to 1e-6 and is left out; XLA compiles anew for
# every image size, which the prediction time includes.)

# %%
accuracy_fns = {name: fns[name] for name in ("keras", "xla", "tflite-float16", "tflite-int8")}
scores = benchmarks.evaluate_backends(accuracy_fns, config, test_samples, reference="keras")
scores.to_csv(out / "speed-accuracy.csv", index=False)
accuracy = scores.groupby("backend", sort=False).agg(
    iou=("iou", "mean"), dsb_score=("dsb_score", "mean"), f1_50=("f1_50", "mean"),
    prob_max_abs_diff=("prob_max_abs_diff", "max"), prob_mean_abs_diff=("prob_mean_abs_diff", "mean"),
    foreground_flips=("foreground_flips", "mean"), predict_s=("predict_s", "median"),
)
accuracy.insert(1, "IoU change", accuracy["iou"] - accuracy.loc["keras", "iou"])
accuracy.insert(3, "DSB change", accuracy["dsb_score"] - accuracy.loc["keras", "dsb_score"])
accuracy.index = [benchmarks.BENCHMARK_BACKENDS[name] for name in accuracy.index]
accuracy.to_csv(out / "speed-accuracy-summary.csv")
by_name = accuracy.rename(index={v: k for k, v in benchmarks.BENCHMARK_BACKENDS.items()})
glue("iou_keras", float(by_name.loc["keras", "iou"]), display=False)
glue("dsb_keras", float(by_name.loc["keras", "dsb_score"]), display=False)
for name in ("xla", "tflite-float16", "tflite-int8"):
    key = name.replace("tflite-", "").replace("-", "_")
    glue(f"iou_{key}", float(by_name.loc[name, "iou"]), display=False)
    glue(f"dsb_{key}", float(by_name.loc[name, "dsb_score"]), display=False)
    glue(f"iou_change_{key}", float(by_name.loc[name, "IoU change"]), display=False)
    glue(f"dsb_change_{key}", float(by_name.loc[name, "DSB change"]), display=False)
    glue(f"flips_{key}", 100 * float(by_name.loc[name, "foreground_flips"]), display=False)
    glue(f"maxdiff_{key}", float(by_name.loc[name, "prob_max_abs_diff"]), display=False)
accuracy.round(4)

# %% mystnb={"figure": {"caption": "Per test image, IoU and DSB score of the quantised TensorFlow Lite models (float16, int8) against the Keras model; grey: equality.", "name": "fig-speed-quantised"}}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
per_image = scores.pivot(index="image_id", columns="backend", values=["iou", "dsb_score"])
for ax, metric in zip(axes, ["iou", "dsb_score"]):
    for name, marker in (("tflite-float16", "s"), ("tflite-int8", "o")):
        ax.scatter(per_image[(metric, "keras")], per_image[(metric, name)], marker=marker, alpha=0.7,
                   label=benchmarks.BENCHMARK_BACKENDS[name])
    lo = float(np.nanmin(per_image[metric].to_numpy()))
    ax.plot([lo, 1], [lo, 1], color="grey", lw=1)
    ax.set(xlabel=f"Keras {metric}", ylabel=f"quantised {metric}", title=f"per test image: {metric}")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Training throughput
#
# The same network is trained for {glue:text}`train_steps_n` steps (after {glue:text}`train_warmup_n` untimed
# ones) on batches of {glue:text}`train_batch_n` random {glue:text}`train_crop_n`-pixel crops, four ways:
# *plain*, a sequential input pipeline without prefetching (the CPU alternates between making a
# batch and training on it); *tuned*, the project's pipeline (augmentation in a parallel map,
# batches prefetched while the network trains); *bfloat16*, tuned plus Keras' `mixed_bfloat16`
# policy (this CPU {glue:text}`avx512_bf16` AVX512-BF16 instructions); and *XLA*, tuned plus a
# compiled training step. Throughput counts training crops per second, input pipeline included.

# %%
glue("train_steps_n", train_steps, display=False)
glue("train_warmup_n", train_warmup, display=False)
glue("train_batch_n", train_batch_size, display=False)
glue("train_crop_n", train_crop, display=False)
rates = {}
for variant in benchmarks.THROUGHPUT_VARIANTS:
    rates[variant] = benchmarks.training_throughput(train_config, train_x, train_y, variant, steps=train_steps,
                                                warmup=train_warmup)
throughput = pd.DataFrame({"crops per s": pd.Series(rates)})
throughput["vs plain"] = throughput["crops per s"] / rates["plain"]
throughput["vs tuned"] = throughput["crops per s"] / rates["tuned"]
throughput.to_csv(out / "speed-throughput.csv")
for variant, rate in rates.items():
    glue(f"rate_{variant}", float(rate), display=False)
glue("tuned_vs_plain", float(rates["tuned"] / rates["plain"]), display=False)
glue("bf16_vs_tuned", float(rates["bfloat16"] / rates["tuned"]), display=False)
glue("xla_vs_tuned", float(rates["xla"] / rates["tuned"]), display=False)
throughput.round(2)

# %% [markdown]
# ## Shipping the quantised model
#
# A quantised file goes into the package beside the float weights (as `model-int8.tflite` or
# `model-float16.tflite`, where `nuclei predict --backend tflite-int8` finds it) only when its
# mean test IoU is within {glue:text}`max_iou_loss` of the float model's, and never from the
# `smoke` profile. A file that fails the test is removed, so that no stale quantised model
# outlives a retrained one.

# %%
glue("max_iou_loss", max_iou_loss, display=False)
decisions = []
for kind in ("int8", "float16"):
    loss = float(by_name.loc["keras", "iou"] - by_name.loc[f"tflite-{kind}", "iou"])
    target = shipped_dir / backends.tflite_filename(kind)
    if not ship_quantised or profile == "smoke":
        why = "ship_quantised is off" if not ship_quantised else "the smoke profile never ships"
        decisions.append(f"{kind}: not shipped ({why}); IoU loss {loss:+.4f}")
    elif loss <= max_iou_loss:
        export.save_tflite(flat[kind], shipped_dir, kind)
        decisions.append(f"{kind}: shipped to {target.relative_to(root)} (IoU loss {loss:+.4f} <= {max_iou_loss})")
    else:
        target.unlink(missing_ok=True)
        decisions.append(f"{kind}: NOT shipped, IoU loss {loss:+.4f} exceeds {max_iou_loss}")
int8_loss = float(by_name.loc["keras", "iou"] - by_name.loc["tflite-int8", "iou"])
glue("int8_iou_loss", int8_loss, display=False)
glue("ship_verdict", decisions[0], display=False)
(out / "speed-shipping.json").write_text(json.dumps({"profile": profile, "decisions": decisions,
                                                     "int8_iou_loss": int8_loss}, indent=2) + "\n")
print("\n".join(decisions))
benchmarks.file_sizes(shipped_dir)

# %%
minutes = (time.perf_counter() - notebook_start) / 60
glue("chapter_minutes", minutes, display=False)
print(f"this chapter ran in {minutes:.1f} min")

# %% [markdown]
# ## Findings
#
# On {glue:text}`cores` CPU cores, one {glue:text}`small_size`x{glue:text}`small_size` image takes
# {glue:text}`keras_predict_ms:.1f` ms with Keras `predict`, {glue:text}`keras_ms:.1f` ms with a
# `tf.function` call (the default engine of `nuclei predict`), {glue:text}`xla_ms:.1f` ms with XLA,
# and {glue:text}`tflite_float32_ms:.1f`, {glue:text}`tflite_float16_ms:.1f` and
# {glue:text}`tflite_int8_ms:.1f` ms with TensorFlow Lite in float32, float16 and int8
# ({glue:text}`tflite_threads` interpreter threads). The fastest single-image engine is
# {glue:text}`best_single_label` at {glue:text}`best_single_ms:.1f` ms, {glue:text}`paper_comparison`
# the paper's 99.37 ms on an RTX 3060 GPU; the int8 model runs
# {glue:text}`int8_speedup:.2f` times as fast as the `tf.function` call. With batching, the best is
# {glue:text}`best_any_label` at {glue:text}`best_any_ms:.1f` ms per image (batch
# {glue:text}`best_any_batch`), which {glue:text}`target_verdict` the {glue:text}`target_ms:.0f` ms target
# (ratio {glue:text}`target_factor:.2f`). A {glue:text}`large_size`-pixel image takes
# {glue:text}`large_keras_ms:.0f` ms with `tf.function` and {glue:text}`large_int8_ms:.0f` ms in int8.
# These are medians; the one-minute load average reached {glue:text}`load_avg:.1f` on
# {glue:text}`cores` cores during the timing runs, a machine {glue:text}`load_note`. The ratios
# between engines, measured in turns, are more reliable than the absolute times. TensorFlow Lite
# is the engine most sensitive to competing programs (int8 at {glue:text}`small_size` pixels:
# {glue:text}`int8_one_thread_ms:.1f` ms with one thread, {glue:text}`int8_all_threads_ms:.1f` ms with
# {glue:text}`cores` threads).
#
# The int8 file is {glue:text}`mb_int8:.1f` MB, {glue:text}`int8_size_ratio:.1f` times smaller than
# the float32 TensorFlow Lite model ({glue:text}`mb_float32:.1f` MB; float16:
# {glue:text}`mb_float16:.1f` MB). On the {glue:text}`n_test` test images the float model reaches
# a mean IoU of {glue:text}`iou_keras:.4f` and a DSB score of {glue:text}`dsb_keras:.4f`; int8 changes
# them by {glue:text}`iou_change_int8:+.4f` and {glue:text}`dsb_change_int8:+.4f`
# ({glue:text}`flips_int8:.2f`% of pixels change side of the threshold), float16 by
# {glue:text}`iou_change_float16:+.4f` and {glue:text}`dsb_change_float16:+.4f`, and XLA by
# {glue:text}`iou_change_xla:+.4f` and {glue:text}`dsb_change_xla:+.4f`. Shipping decision:
# {glue:text}`ship_verdict`.
#
# Training runs at {glue:text}`rate_plain:.1f` crops/s with a plain input pipeline and
# {glue:text}`rate_tuned:.1f` with the tuned one ({glue:text}`tuned_vs_plain:.2f` times); bfloat16
# mixed precision reaches {glue:text}`rate_bfloat16:.1f` crops/s ({glue:text}`bf16_vs_tuned:.2f` times
# the tuned throughput) and XLA {glue:text}`rate_xla:.1f` ({glue:text}`xla_vs_tuned:.2f` times). The
# whole chapter ran in {glue:text}`chapter_minutes:.1f` minutes.
