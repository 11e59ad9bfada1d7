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
profile: str = "cpu"
artefacts: str = "artefacts/lab"  # a scratch copy of the profile's artefacts; `nuclei study` passes artefacts/<profile>
seed: int = 42
max_images: "Optional[int]" = None
split: str = "original"
model_name: str = "unet-dsb2018"
sizes: list[int] = [256, 512, 1024]
batches: list[int] = [1, 4, 16]
max_batch_pixels: int = 16 * 256 * 256
repeats: int = 3
warmup: int = 1
tflite_threads: "Optional[int]" = None
test_limit: "Optional[int]" = None
train_images: int = 48
calibration_crops: int = 32
calibration_size: int = 256
train_crop: int = 128
train_batch_size: int = 8
train_steps: int = 8
train_warmup: int = 2
target_ms: float = 30.0
max_iou_loss: float = 0.01
ship_quantised: bool = True
e2e_images: int = 80
e2e_small: int = 16
e2e_backends: list[str] = ["keras", "tflite-int8", "tflite-float16"]
e2e_busy_backend: str = "auto"  # auto: the backend `nuclei predict --backend auto` takes on this CPU
e2e_busy_cores: int = 1

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
import seaborn as sns
import tensorflow as tf  # noqa: F401  (imported before the set-up call, which then quiets its logger)
from myst_nb import glue

from nucleilib import backends, data, export, machine, models, training
from nucleilib.study import benchmarks, chapter

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
shipped_dir = run.shipped(model_name)
model, config = models.load_model(shipped_dir)
card = models.model_card(shipped_dir) if (shipped_dir / "card.json").is_file() else {}
test_samples, train_samples = benchmarks.load_speed_samples(
    out / "splits" / f"split-{split}.csv", data.data_root(), test_limit=test_limit, train_images=train_images, seed=seed)
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
threads = benchmarks.threads_table(cores, tflite_threads, bf16)
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
flat, convert_s = benchmarks.convert_tflite(model, calibration, backends.TFLITE_KINDS)
sizes_table = benchmarks.model_sizes(model.count_params(), shipped_dir / "weights.npz", flat, convert_s)
sizes_table.to_csv(out / "speed-sizes.csv")
for name, value in benchmarks.size_facts(flat, sizes_table).items():
    glue(name, value, display=False)
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
glue("load_note", benchmarks.load_note(load_avg, cores), display=False)
print(f"load average (1 min) on {cores} cores: {load_before:.1f} before, {load_after:.1f} after the timing runs")
timing.to_csv(out / "speed-timing.csv", index=False)
ms_table = benchmarks.ms_table(timing)
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
labels = list(ms_table.columns)
palette = dict(zip(labels, sns.color_palette("tab10", len(labels))))
for ax, batch in zip(axes[0], batch_values):
    part = timing[timing["batch"] == batch]
    for label in labels:
        line = part[part["label"] == label].sort_values("size")
        ax.plot(line["size"], line["ms_per_image"], marker="o", label=label, color=palette[label])
    ax.axhline(benchmarks.PAPER_MS, color="grey", ls="--", lw=1, label=f"seed paper, RTX 3060 ({benchmarks.PAPER_MS} ms)")
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
facts = benchmarks.timing_facts(timing, target_ms)
for name, value in facts.items():
    glue(name, value, display=False)
smallest = facts["small_size"]
print(f"{smallest}x{smallest}, batch 1: fastest is {facts['best_single_label']} at {facts['best_single_ms']:.1f} "
      f"ms/image; any batch: {facts['best_any_label']} (batch {facts['best_any_batch']}) at "
      f"{facts['best_any_ms']:.1f} ms/image; target {target_ms:g} ms: "
      f"{'met' if facts['target_verdict'] == 'meets' else 'missed'}")

# %% [markdown]
# TensorFlow Lite's thread pool synchronises its threads at every layer, which pays off on idle
# cores but suffers when other programs compete for them. The TensorFlow Lite models once more,
# at {glue:text}`small_size` pixels and batch 1, with one thread and with one per core:

# %%
thread_table = benchmarks.tflite_thread_timing(flat, smallest, (1, cores), repeats=repeats, warmup=warmup,
                                               channels=config.in_channels)
thread_table.to_csv(out / "speed-threads.csv")
glue("int8_one_thread_ms", float(thread_table.loc[("TFLite int8", 1), "ms per image (median)"]), display=False)
glue("int8_all_threads_ms", float(thread_table.loc[("TFLite int8", cores), "ms per image (median)"]), display=False)
thread_table.round(1)

# %% [markdown]
# ## What quantisation costs in accuracy
#
# The test images are segmented with each engine under the shipped model's own settings (each
# image rescaled so that its nuclei, measured by a first pass, are {glue:text}`shipped_diameter`
# pixels across; a stained image given as its {glue:text}`shipped_colour_input` input; padded to
# a multiple of 16, tiled above 512 pixels), separated with the model's own method and
# thresholds, and scored against the annotations. Besides the scores, the table gives how far each engine's foreground
# and border probabilities move from the Keras ones, and the share of pixels that end up on the
# other side of the foreground threshold; {numref}`fig-speed-quantised` compares the images one by
# one. (TensorFlow Lite float32 only repeats Keras to 1e-6 and is left out; XLA compiles anew for
# every image size, which the prediction time includes.)

# %%
glue("shipped_diameter", f"{config.diameter:g}" if config.diameter else "(not rescaled)", display=False)
glue("shipped_colour_input", config.colour_input, display=False)
accuracy_fns = {name: fns[name] for name in ("keras", "xla", "tflite-float16", "tflite-int8")}
scores = benchmarks.evaluate_backends(accuracy_fns, config, test_samples, reference="keras")
scores.to_csv(out / "speed-accuracy.csv", index=False)
accuracy = benchmarks.accuracy_summary(scores, reference="keras")
accuracy.to_csv(out / "speed-accuracy-summary.csv")
for name, value in benchmarks.accuracy_facts(accuracy, ("xla", "tflite-float16", "tflite-int8")).items():
    glue(name, value, display=False)
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
rates = benchmarks.throughput_rates(train_config, train_x, train_y, steps=train_steps, warmup=train_warmup)
throughput = benchmarks.throughput_table(rates)
throughput.to_csv(out / "speed-throughput.csv")
for name, value in benchmarks.throughput_facts(rates).items():
    glue(name, value, display=False)
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
losses = benchmarks.iou_losses(accuracy, ("int8", "float16"), reference="keras")
decisions = benchmarks.ship_quantised_models(flat, losses, shipped_dir, root=root, max_iou_loss=max_iou_loss,
                                             ship_quantised=ship_quantised, profile=profile)
int8_loss = losses["int8"]
glue("int8_iou_loss", int8_loss, display=False)
glue("ship_verdict", decisions[0], display=False)
(out / "speed-shipping.json").write_text(json.dumps({"profile": profile, "decisions": decisions,
                                                     "int8_iou_loss": int8_loss}, indent=2) + "\n")
print("\n".join(decisions))
benchmarks.file_sizes(shipped_dir)

# %% [markdown]
# ## The whole command
#
# A user does not call the network: they run `nuclei predict` on a folder. The command is timed as
# a user runs it, in a new process, on the first {glue:text}`e2e_images_n` 256x256 images of the
# data set, at the images' own scale (`--diameter none`: one network pass per image, as above).
# The marginal time per image is the steady rate at which it writes label images once the first
# {glue:text}`e2e_small_n` are written, (t_{glue:text}`e2e_images_n` - t_{glue:text}`e2e_small_n`) /
# ({glue:text}`e2e_images_n` - {glue:text}`e2e_small_n`), with t_k the time the k-th label image
# was written (its file's modification time): the start-up is left out, and since one run gives
# both times, its run-to-run variation is not either. The time to the first label image on disk
# includes it. Beside it, the same backend's forward pass on one 256x256 image in this process. The last rows run the default backend again while {glue:text}`e2e_busy_n` core(s)
# are kept busy by another program, with one thread and with one per core (`--threads`).
#
# The default, `--backend auto`, takes the int8 model on a CPU with int8 dot-product instructions
# (AVX-512 VNNI, AVX-VNNI or AMX), where XNNPACK's int8 kernels are the faster, and the float16
# model elsewhere. This CPU ({glue:text}`cpu_model_here`) has {glue:text}`int8_dot_here`, so
# `auto` takes {glue:text}`auto_backend_here`.

# %%
import tempfile

glue("e2e_images_n", e2e_images, display=False)
glue("e2e_small_n", e2e_small, display=False)
glue("e2e_busy_n", e2e_busy_cores, display=False)
e2e_inputs = benchmarks.square_image_paths(out / "manifest.csv", data.data_root(), e2e_images)
auto_backend = backends.default_backend(shipped_dir)
int8_dot = sorted(set(machine.cpu_flags()) & set(backends.INT8_DOT_PRODUCT_FLAGS))
glue("cpu_model_here", machine.cpu_model(), display=False)
glue("int8_dot_here", ", ".join(int8_dot) if int8_dot else "none of them", display=False)
glue("auto_backend_here", auto_backend, display=False)
busy_backend = auto_backend if e2e_busy_backend == "auto" else e2e_busy_backend
e2e_runs = [(backend, None, 0) for backend in e2e_backends]
e2e_runs += [(busy_backend, threads, e2e_busy_cores) for threads in (1, cores)]
with tempfile.TemporaryDirectory(prefix="nuclei-e2e-") as e2e_work:
    end_to_end = benchmarks.end_to_end_table(e2e_inputs, e2e_work, e2e_runs, small=e2e_small, model=str(shipped_dir))
end_to_end.to_csv(out / "speed-end-to-end.csv", index=False)
for name, value in benchmarks.end_to_end_facts(end_to_end, target_ms, default_backend=auto_backend).items():
    glue(name, value, display=False)
end_to_end.round(2)

# %%
minutes = (time.perf_counter() - notebook_start) / 60
glue("chapter_minutes", minutes, display=False)
print(f"this chapter ran in {minutes:.1f} min")

# %% [markdown]
# ## Findings
#
# On {glue:text}`cores` CPU cores, one {glue:text}`small_size`x{glue:text}`small_size` image takes
# {glue:text}`keras_predict_ms:.1f` ms with Keras `predict`, {glue:text}`keras_ms:.1f` ms with a
# `tf.function` call (the default engine of `Segmenter.from_pretrained`), {glue:text}`xla_ms:.1f` ms with XLA,
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
# {glue:text}`rate_tuned:.1f` with the tuned one ({glue:text}`tuned_vs_plain:.2f` times);
# {glue:text}`bf16_sentence`; and XLA {glue:text}`rate_xla:.1f` ({glue:text}`xla_vs_tuned:.2f` times). The
# whole chapter ran in {glue:text}`chapter_minutes:.1f` minutes.
#
# With the backend it takes by default on this CPU, {glue:text}`e2e_default_backend`, the whole
# `nuclei predict` command takes {glue:text}`e2e_default_ms:.1f` ms per further 256x256 image at
# the images' own scale, against {glue:text}`e2e_fastest_network_ms:.1f` ms for the fastest network
# path alone (ratio {glue:text}`e2e_default_ratio:.2f`, which {glue:text}`e2e_ratio_verdict` the
# target of 1.15; the {glue:text}`target_ms:.0f` ms target per image it {glue:text}`e2e_ms_verdict`).
# Its first label image is written {glue:text}`e2e_first_s:.1f` s after the command starts
# (start-up included; it {glue:text}`e2e_first_verdict` the 3 s target). The fastest command of
# the table is {glue:text}`e2e_best_backend`'s, {glue:text}`e2e_best_ms:.1f` ms per image. What the
# command adds to the network is reading, preparing, separating, measuring and writing each
# image, on the same {glue:text}`cores` cores the network uses. With {glue:text}`e2e_busy_n` core(s) busy with
# other work, {glue:text}`e2e_busy_backend` takes {glue:text}`e2e_busy_one_thread_ms:.1f` ms per image
# with one thread and {glue:text}`e2e_busy_all_threads_ms:.1f` ms with one per core:
# {glue:text}`e2e_busy_threads_verdict` here.
