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
# # Layer-wise relevance propagation, rule by rule
#
# Grad-CAM (previous chapter) weighs the feature maps of one layer; layer-wise relevance
# propagation (LRP) {cite:p}`bach2015` redistributes the network's output back to the input
# pixels, layer by layer, by a *rule* that the result depends on. The seed paper
# {cite}`gautam2025` names LRP but neither the rule nor the quantity explained. This chapter
# explains the shipped U-Net with four of innvestigate's rules (epsilon, z, alpha-1-beta-0 and
# the sequential preset A), on test images of each modality, and measures the relevance maps
# as the previous chapter measured Grad-CAM: relevance share on nuclei against their area,
# the pointing game, the correlation with the nucleus mask, the model-randomisation sanity
# check {cite:p}`adebayo2018`, how alike the rules' maps are, and what each rule costs.
# innvestigate works on TensorFlow-1
# style graphs, so this whole chapter runs in graph mode, in its own kernel.

# %% tags=["parameters"]
profile: str = "cpu"
artefacts: str = "artefacts/lab"  # a scratch copy of the profile's artefacts; `nuclei study` passes artefacts/<profile>
seed: int = 42
max_images: "Optional[int]" = None  # None: all picked images; a number: at most that many
split: str = "original"
n_images_per_modality: int = 2
image_size: int = 256  # side of the window the network sees (a multiple of 16)
rules: list[str] = ["lrp.epsilon", "lrp.z", "lrp.alpha_1_beta_0", "lrp.sequential_preset_a"]
epsilon: float = 0.1  # stabiliser of lrp.epsilon (innvestigate's default, 1e-7, makes it lrp.z)
sanity_rules: list[str] = ["lrp.epsilon"]  # rules that get the randomisation check (fast ones)
cascade_stops: list[str] = ["logits", "dec2", "bottleneck"]  # cascading randomisation (first sanity rule); "all" is the full check
boundary_width: int = 2  # pixels on each side of a nucleus outline in the boundary band

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
import tensorflow as tf

# innvestigate needs graph mode, switched on before any model is built.
tf.compat.v1.disable_eager_execution()

# %%
# Renders the figures that nucleilib.study.explain returns (built outside pyplot) as the cell's value.
# %matplotlib inline
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display
from myst_nb import glue

from nucleilib import models
from nucleilib.study import chapter, explain

started = time.perf_counter()
run = chapter.setup(profile, artefacts)  # also silences innvestigate's and Keras 2's graph-mode warnings
root, out = run.root, run.out
run.facts()

# %% [markdown]
# ## Images and model
#
# As in the Grad-CAM chapter: test images of the original split, up to
# `n_images_per_modality` per modality drawn with the study's seed, preprocessed as in
# training, and a square window centred on the centre of mass of the annotated nuclei.
# The shipped model is loaded once (in the graph) for its weights and its probabilities.

# %%
picked_samples, modality = explain.pick_test_samples(out, split, n_images_per_modality, seed=seed, max_images=max_images)

ids = [s.image_id for s in picked_samples]
net, config = models.load_model(run.shipped())
windows = explain.explanation_windows(picked_samples, modality, config, image_size)
x, truth = windows.x, windows.truth
weights = net.get_weights()
probs = net.predict(x, batch_size=2, verbose=0)  # graph mode too
pred = probs[..., 0] > config.threshold
del net
rules = list(rules)
sanity_rules = [rule for rule in sanity_rules if rule in rules]
glue("n_images", len(ids), display=False)
glue("image_size", image_size, display=False)
print(f"{len(ids)} test images, {image_size}x{image_size} windows; rules: {', '.join(rules)}")
windows.table().round(3)

# %% [markdown]
# ## The network as innvestigate sees it
#
# innvestigate 2.1.2 explains one value per image, and its sequential presets refuse a
# sigmoid output. `explain.lrp_model` therefore rebuilds the U-Net from its configuration and
# weights without the sigmoid, folds each batch normalisation into the convolution before it
# (same logits; the usual canonisation for LRP, and a several times smaller graph), selects
# the foreground channel of the logits with a fixed 1x1 convolution and averages it over the
# image: the quantity explained is the **mean foreground logit**. Relevance is summed over
# the three input channels. Each rule gets a fresh graph. `lrp.epsilon` uses the stabiliser
# `epsilon` of the parameters: with innvestigate's default it would be `lrp.z`.

# %%
rule_options = {"lrp.epsilon": {"epsilon": epsilon}}
lrp_run = explain.lrp_rule_maps(config, weights, x, rules, options=rule_options)  # a fresh graph per rule
maps, timing = lrp_run.maps, lrp_run.timing()
explain.glue_findings(explain.timing_findings(timing))
timing.assign(**{"relevance sum / explained logit (median)": lrp_run.conservation()}).round(3)

# %% [markdown]
# The last column checks conservation: LRP rules that pass no relevance to biases or to a
# stabiliser return a relevance sum equal to the explained value (ratio 1). The rules here
# give biases their share, so the ratio shows how much of the mean logit the pixels receive.
#
# How different are the rules' maps? Mean Spearman rank similarity between the maps of two
# rules, over the images. (innvestigate's sequential preset A applies the epsilon rule to
# dense layers and alpha-1-beta-0 to convolutions; this U-Net has no dense layer.)

# %%
pairs = explain.pairwise_similarity(maps)
explain.glue_findings(explain.pair_findings(pairs))
pairs.round(3)

# %% [markdown]
# {numref}`fig-lrp-rules` shows the relevance maps of every rule for each window.

# %% mystnb={"figure": {"caption": "LRP relevance of the mean foreground logit, one row per test window: the window, the outlines of its annotated nuclei, the predicted foreground probability, then one signed map per rule (red positive, blue negative, symmetric scale clipped at a high percentile of the magnitude; black outlines of the annotated nuclei).", "name": "fig-lrp-rules"}}
def short(name):
    """A rule's name without innvestigate's "lrp." prefix, as a column title."""
    return name.replace("lrp.", "")


explain.explanation_grid(windows, probs[..., 0], {short(rule): m for rule, m in maps.items()}, range(len(ids)),
                         truth, style="signed",
                         title="LRP relevance (red positive, blue negative; black: annotated nuclei)")

# %% [markdown]
# ## How much relevance falls on nuclei?
#
# The measures of the previous chapter, on the positive part of each map: relevance share on
# the annotated nuclei against their area share, enrichment (ratio of the means), the pointing
# game, the correlation of the signed map with the nucleus mask, and the share of the positive
# relevance in a band of `boundary_width` pixels on both sides of the nucleus outlines against
# the band's area share (their ratio of means is the boundary enrichment).

# %%
measures = explain.measure_maps(maps, {"truth": truth, "prediction": pred}, ids, name="rule",
                                columns={"modality": modality}, per_name={rule: lrp_run.columns(rule) for rule in rules},
                                boundary_width=boundary_width)
on_truth = measures[measures["reference"] == "truth"]
by_rule = explain.summarise_measures(on_truth, "rule")
explain.glue_findings(explain.lrp_findings(by_rule, on_truth))
by_rule.round(3)

# %%
explain.summarise_measures(on_truth, ["rule", "modality"]).round(3)

# %% [markdown]
# ## Sanity check: do the maps depend on the weights?
#
# For the fast rules: all trainable weights re-drawn from their initialisers (the channel
# selector stays fixed), LRP again, and the Spearman rank similarity of each map with the
# trained one, signed and on magnitudes (|R|, since a rule may flip signs). Then, for the
# first of these rules, cascading randomisation from the output block down to the listed
# blocks. {numref}`fig-lrp-randomised` shows the maps of the randomised network and
# {numref}`fig-lrp-cascade` the cascade.

# %%
random_maps, sanity = explain.lrp_randomisation_check(config, weights, x, sanity_rules, maps, ids, seed=seed,
                                                      options=rule_options)
measures = measures.merge(sanity, on=["image_id", "rule"], how="left")
sanity_summary = sanity.groupby("rule")[["randomised_similarity", "randomised_similarity_abs"]].mean()
explain.glue_findings(explain.sanity_findings(sanity_summary))

# %% mystnb={"figure": {"caption": "LRP relevance of the network with all weights re-drawn from their initialisers, for up to three windows and each checked rule (red positive, blue negative; black outlines of the annotated nuclei). Maps that look like those of the trained network would not depend on what it learned.", "name": "fig-lrp-randomised"}}
if random_maps:
    fig = explain.explanation_grid(windows, probs[..., 0],
                                   {f"{short(r)} (random)": m for r, m in random_maps.items()},
                                   range(min(3, len(ids))), truth, style="signed",
                                   title="LRP of the network with all weights re-drawn")
else:
    fig = explain.placeholder_figure("Randomisation check not run in this profile (no sanity rule)")
fig

# %%
sanity_summary.round(3)

# %%
cascade_table = pd.DataFrame(columns=["randomised down to", "similarity |R|"])
if sanity_rules and cascade_stops:
    rule = sanity_rules[0]
    checked = sanity.loc[sanity["rule"] == rule, "randomised_similarity_abs"].mean()  # every weight re-drawn
    cascade_table = explain.lrp_cascade(config, weights, x, rule, maps[rule], cascade_stops, seed=seed,
                                        options=rule_options, full_similarity=checked)
explain.glue_findings(explain.cascade_findings(cascade_table, sanity_rules[0] if sanity_rules else "",
                                               key="cascade_rule", column="similarity |R|"))

# %% mystnb={"figure": {"caption": "Cascading randomisation: mean Spearman rank similarity of the relevance magnitudes between the trained network and copies whose weights are re-drawn from the output down to the block named on the horizontal axis. The dotted line marks no similarity.", "name": "fig-lrp-cascade"}}
if len(cascade_table):
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(cascade_table["randomised down to"], cascade_table["similarity |R|"], marker="o")
    ax.axhline(0, color="grey", ls=":")
    ax.set(ylim=(-1, 1), ylabel="Spearman similarity of |R|", xlabel="weights re-drawn, from the output down to",
           title=f"Cascading randomisation, {sanity_rules[0]}")
    plt.tight_layout()
    plt.show()
else:
    display(explain.placeholder_figure("Cascading randomisation not run in this profile"))

# %%
cascade_table.round(3)

# %% [markdown]
# ## The paper's numbers, LRP readings
#
# The same candidate readings as in the Grad-CAM chapter, per rule: the mean of the map
# scaled by its largest magnitude over nucleus pixels (the paper's "mean relevance 0.45
# across nuclear regions"), and the number of pixels with positive relevance and of the
# connected regions they form, summed over the images (its "31,988 positively contributing
# regions"). The paper's "confidence score of 0.902", given with its LRP overlays, is read as
# the network's mean foreground probability over the pixels it calls nucleus, or over the
# annotated nuclei, on these windows.

# %%
paper_table = explain.paper_readings(on_truth, "rule")
explain.glue_findings(explain.paper_findings(paper_table))
glue("total_pixels", int(truth.size), display=False)
confidence = {**explain.confidence_readings(probs[..., 0], pred, truth), "windows": len(ids)}
(out / "explain-lrp-confidence.json").write_text(json.dumps(confidence, indent=2) + "\n")
glue("confidence_pred", confidence["over_predicted_nuclei"], display=False)
glue("confidence_truth", confidence["over_annotated_nuclei"], display=False)
print(f"mean foreground probability over predicted nuclei: {confidence['over_predicted_nuclei']:.3f}; "
      f"over annotated nuclei: {confidence['over_annotated_nuclei']:.3f}")
paper_table.round(3)

# %%
measures = measures[["image_id", "modality", "rule", "reference", "relevance_share", "area_share", "enrichment",
                     "pointing_game", "correlation", "mean_inside", "mean_outside", "positive_pixels",
                     "positive_regions", "boundary_share", "boundary_area_share", "relevance_sum", "explained_logit", "randomised_similarity",
                     "randomised_similarity_abs", "seconds"]]
measures.to_csv(out / "explain-lrp.csv", index=False)
minutes = (time.perf_counter() - started) / 60
glue("minutes", minutes, display=False)
print(f"{len(measures)} rows written to {Path(artefacts) / 'explain-lrp.csv'}; "
      f"chapter computed in {minutes:.1f} min")

# %% [markdown]
# ## Findings
#
# On {glue:text}`n_images` test windows of {glue:text}`image_size` pixels, where nuclei cover on
# average {glue:text}`area_share:.3f` of the pixels, the LRP rules put between
# {glue:text}`enrichment_min:.2f` and {glue:text}`enrichment_max:.2f` times their area share of
# positive relevance on nuclei. The most concentrated, {glue:text}`best_rule`, puts
# {glue:text}`best_share:.3f` of its positive relevance there, hits a nucleus in the pointing game
# at a rate of {glue:text}`best_pointing:.2f` and correlates with the nucleus mask at
# {glue:text}`best_corr:.2f`. The rules differ in cost: from {glue:text}`fastest_seconds:.0f` s
# ({glue:text}`fastest_rule`) to {glue:text}`slowest_seconds:.0f` s ({glue:text}`slowest_rule`)
# for all images on this machine, most of it spent building innvestigate's graph. The two most
# alike rules, {glue:text}`closest_pair`, have a mean rank similarity of
# {glue:text}`closest_similarity:.2f`; the least alike pair {glue:text}`farthest_similarity:.2f`.
#
# Under the randomisation check, the mean rank similarity of relevance magnitudes between the
# trained and the randomised network lies between {glue:text}`rand_sim_abs_min:.2f` and
# {glue:text}`rand_sim_abs_max:.2f` for the fast rules; cascading from the output with
# {glue:text}`cascade_rule`, it goes from {glue:text}`cascade_first:.2f` to
# {glue:text}`cascade_last:.2f`. Values near 1 would mean the maps follow the image (its edges
# and intensities), not the trained weights.
#
# Read as LRP quantities, the paper's undefined numbers become: a mean scaled relevance over
# nuclei between {glue:text}`relevance_in_nuclei_min:.2f` and {glue:text}`relevance_in_nuclei_max:.2f`
# depending on the rule (paper: 0.45), and between {glue:text}`positive_pixels_min` and
# {glue:text}`positive_pixels_max` positive pixels, or {glue:text}`positive_regions_min` to
# {glue:text}`positive_regions_max` connected positive regions, in {glue:text}`total_pixels`
# pixels (paper: 31,988). Which rule, which images and which threshold the paper used decide
# these numbers more than the network does. The network's mean foreground probability on these
# windows is {glue:text}`confidence_pred:.3f` over the nuclei it predicts and
# {glue:text}`confidence_truth:.3f` over the annotated ones (paper: a "confidence score" of 0.902).
