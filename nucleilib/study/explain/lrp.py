"""Layer-wise relevance propagation of the U-Net, with innvestigate, in graph mode.

:func:`lrp_model` rebuilds the network from a :class:`~nucleilib.models.ModelConfig`
and its weights without the final sigmoid, folds batch normalisation into the
convolutions before it and ends with the mean foreground logit (innvestigate
2.1.2 cannot explain an output of more than two dimensions); :func:`lrp_maps`
runs one of :data:`LRP_RULES`. The chapter's computations on top of them:
:func:`lrp_rule_maps` (every rule in a fresh graph, timed, as a
:class:`RuleMaps`), :func:`lrp_randomisation_check` and :func:`lrp_cascade`
(the sanity check of Adebayo et al. 2018).

:func:`lrp_maps` needs graph mode: the caller runs
``tf.compat.v1.disable_eager_execution()`` in a fresh process before any model
is built, so LRP cannot share a process with the Grad-CAM half
(:mod:`nucleilib.study.explain.gradcam`). Importing this module does not switch
modes; TensorFlow and innvestigate are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...models import ModelConfig, build_unet
from ._checks import as_batch, channel_index, names_list, short_name
from .measures import mean_similarity, randomised_similarity
from .randomise import cascade_steps, randomise_weights

#: The LRP rules compared in the explainability chapter (innvestigate analyzer names).
LRP_RULES: tuple[str, ...] = ("lrp.epsilon", "lrp.z", "lrp.alpha_1_beta_0", "lrp.sequential_preset_a")


def _fold_batch_norm(
    params: dict[str, dict[str, np.ndarray]], epsilons: dict[str, float]
) -> dict[str, dict[str, np.ndarray]]:
    """Fold each ``<block>_bn<i>`` into the convolution ``<block>_conv<i>`` before it."""
    folded = {name: dict(values) for name, values in params.items() if name not in epsilons}
    for bn, eps in epsilons.items():
        conv = bn.replace("_bn", "_conv")
        if conv not in folded:
            raise ValueError(f"cannot fold {bn!r}: no convolution {conv!r} before it")
        values = params[bn]
        scale = values["gamma"] / np.sqrt(values["moving_variance"] + eps)
        kernel = folded[conv]["kernel"]
        bias = folded[conv].get("bias", np.zeros(kernel.shape[-1], np.float32))
        folded[conv] = {
            "kernel": (kernel * scale).astype(np.float32),
            "bias": (values["beta"] + (bias - values["moving_mean"]) * scale).astype(np.float32),
        }
    return folded


def lrp_model(
    config: ModelConfig,
    weights: Sequence[np.ndarray],
    *,
    target: str | int = "foreground",
    fold_batch_norm: bool = True,
    input_size: int | None = None,
) -> Any:
    """Rebuild a U-Net for innvestigate: no sigmoid, one mean logit per image.

    The network of ``config`` is built without its final sigmoid (the
    sequential LRP presets refuse a sigmoid output), with ``weights`` (in the
    order of ``build_unet(config).get_weights()``, as ``weights.npz`` stores
    them). With ``fold_batch_norm`` each batch normalisation is folded into the
    convolution before it (the usual LRP canonisation; it gives the same
    logits in inference and makes innvestigate's graph several times smaller
    and faster to build). A fixed, non-trainable 1x1 convolution with a one-hot
    kernel and no bias then selects the ``target`` channel of the logits, and
    ``GlobalAveragePooling2D`` reduces it to one value per image (innvestigate
    2.1.2 under Keras 2.14 cannot explain outputs of more than two
    dimensions).

    Parameters
    ----------
    config : ModelConfig
        A ``"unet"`` configuration.
    weights : sequence of ndarray
        The trained weights.
    target : str or int
        Output channel to explain (``"foreground"`` = 0).
    fold_batch_norm : bool
        Fold batch normalisation into the convolutions.
    input_size : int, optional
        Fix the input size (default: any multiple of ``2**depth``).

    Returns
    -------
    tf.keras.Model
        Output ``(N, 1)``: the mean logit of the target channel. Layers
        ``"select_channel"`` and ``"mean_logit"`` follow ``"logits"``.

    Raises
    ------
    ValueError
        For another architecture, weights of the wrong number or shapes, or an
        unknown target.

    Examples
    --------
    Built here in eager mode (it works in both); :func:`lrp_maps` needs graph mode.

    >>> from nucleilib.models import ModelConfig, build_unet
    >>> config = ModelConfig(base_filters=4, depth=2)
    >>> analysed = lrp_model(config, build_unet(config).get_weights())
    >>> analysed.output_shape, [layer.name for layer in analysed.layers[-3:]]
    ((None, 1), ['logits', 'select_channel', 'mean_logit'])
    >>> any("_bn" in layer.name for layer in analysed.layers)
    False
    """
    import tensorflow as tf
    from tensorflow.keras import layers

    if not isinstance(config, ModelConfig):
        raise ValueError(f"config must be a ModelConfig, got {type(config).__name__}")
    if config.architecture != "unet":
        raise ValueError(f"lrp_model rebuilds U-Nets only, not architecture {config.architecture!r}")
    channel = channel_index(target, len(config.outputs))
    # The network exactly as trained (without its sigmoid): the layout of ``weights``.
    base = build_unet(config, input_size=input_size, final_activation=False)
    layout = [
        (layer.name, short_name(v), tuple(int(d) for d in v.shape)) for layer in base.layers for v in layer.weights
    ]
    arrays = [np.asarray(w, dtype=np.float32) for w in weights]
    if len(arrays) != len(layout):
        raise ValueError(f"got {len(arrays)} weight arrays, the network of this config needs {len(layout)}")
    params: dict[str, dict[str, np.ndarray]] = {}
    for (layer_name, variable, shape), array in zip(layout, arrays):
        if array.shape != shape:
            raise ValueError(f"weight {layer_name}/{variable}: expected shape {shape}, got {array.shape}")
        params.setdefault(layer_name, {})[variable] = array
    if fold_batch_norm and config.batch_norm:
        epsilons = {
            layer.name: float(layer.epsilon)
            for layer in base.layers
            if isinstance(layer, tf.keras.layers.BatchNormalization)
        }
        params = _fold_batch_norm(params, epsilons)
        base = build_unet(dataclasses.replace(config, batch_norm=False), input_size=input_size, final_activation=False)
    for layer in base.layers:
        if layer.weights:
            layer.set_weights([params[layer.name][short_name(v)] for v in layer.weights])
    select = layers.Conv2D(1, 1, use_bias=False, trainable=False, name="select_channel")
    pooled = layers.GlobalAveragePooling2D(name="mean_logit")(select(base.outputs[0]))
    one_hot = np.zeros((1, 1, len(config.outputs), 1), np.float32)
    one_hot[0, 0, channel, 0] = 1.0
    select.set_weights([one_hot])
    return tf.keras.Model(base.inputs, pooled, name=f"{base.name}_lrp")


@contextlib.contextmanager
def constant_inputs_kept_as_tensors(keep: bool = True) -> Iterator[None]:
    """Let Keras wrap raw TensorFlow ops without evaluating their constant inputs (graph mode).

    innvestigate builds its backward graph from raw TensorFlow ops; in graph mode Keras wraps
    each one in a layer and, by default, computes every constant input of it with a session
    call, which hands the whole graph built so far to the session again: the building time
    grows with the square of the graph (two thirds of each rule's time for the shipped U-Net).
    Keras's ``_UNSAFE_GRAPH_OP_LAYER_CREATION`` keeps those constants as tensors; what it gives
    up (saving the wrapped model through ``get_config``, and random ops drawn once instead of
    per run) is nothing an analyzer uses, and the maps are the same bit for bit (tested). The
    setting is restored on exit.
    """
    from keras.src.engine import base_layer_utils

    before = base_layer_utils._UNSAFE_GRAPH_OP_LAYER_CREATION
    base_layer_utils._UNSAFE_GRAPH_OP_LAYER_CREATION = keep
    try:
        yield
    finally:
        base_layer_utils._UNSAFE_GRAPH_OP_LAYER_CREATION = before


def lrp_maps(
    analyzer_model: Any, images: np.ndarray, rule: str, *, keep_constants_as_tensors: bool = True, **kwargs: Any
) -> np.ndarray:
    """LRP relevance maps of a :func:`lrp_model` with one innvestigate rule.

    Runs ``analyzer_model.predict`` once (so the weights are in the session),
    then ``innvestigate.create_analyzer(rule, analyzer_model, **kwargs)`` and
    ``analyze``. Needs graph mode: call ``tf.compat.v1.disable_eager_execution()``
    before any model is built. Building the analyzer dominates the time (it
    grows with the network, not much with the images), so pass all images of a
    rule in one call.

    Parameters
    ----------
    analyzer_model : tf.keras.Model
        Output ``(N, 1)`` (see :func:`lrp_model`).
    images : ndarray, shape (N, H, W, C)
        Preprocessed images.
    rule : str
        An innvestigate LRP analyzer name, e.g. one of :data:`LRP_RULES`.
    keep_constants_as_tensors : bool
        Build the analyzer under :func:`constant_inputs_kept_as_tensors` (two to three times
        faster, the same maps); False builds it as Keras does by default.
    **kwargs
        Passed to the analyzer (e.g. ``epsilon=``).

    Returns
    -------
    ndarray of float32, shape (N, H, W)
        Relevance summed over the input channels (signed).

    Raises
    ------
    ValueError
        For an unknown rule, a model whose output is not ``(N, 1)`` or invalid
        images.
    RuntimeError
        In eager mode.

    Examples
    --------
    In a fresh process, graph mode first (so not in this doctest, which runs eagerly):

    >>> import tensorflow as tf; tf.compat.v1.disable_eager_execution()  # doctest: +SKIP
    >>> maps = lrp_maps(lrp_model(config, weights), x, "lrp.epsilon", epsilon=0.1)  # doctest: +SKIP
    >>> maps.shape == x.shape[:3]  # doctest: +SKIP
    True

    In eager mode it refuses:

    >>> from nucleilib.models import ModelConfig, build_unet
    >>> config = ModelConfig(base_filters=4, depth=2)
    >>> lrp_maps(lrp_model(config, build_unet(config).get_weights()), np.zeros((1, 32, 32, 3)), "lrp.z")
    Traceback (most recent call last):
    RuntimeError: lrp_maps needs graph mode: call tf.compat.v1.disable_eager_execution() before building any model (in a fresh process)
    """
    import tensorflow as tf

    if tf.executing_eagerly():
        raise RuntimeError(
            "lrp_maps needs graph mode: call tf.compat.v1.disable_eager_execution() "
            "before building any model (in a fresh process)"
        )
    import innvestigate
    from innvestigate.analyzer import analyzers

    known = sorted(name for name in analyzers if name.startswith("lrp"))
    if not isinstance(rule, str) or rule not in known:
        raise ValueError(f"unknown LRP rule {rule!r}; choose one of {', '.join(LRP_RULES)} (or {', '.join(known)})")
    outputs = getattr(analyzer_model, "outputs", None)
    if not outputs or len(outputs) != 1 or len(tuple(outputs[0].shape)) != 2:
        raise ValueError("analyzer_model: expected one output of shape (N, 1); build it with lrp_model")
    batch = as_batch(images, analyzer_model)
    analyzer_model.predict(batch[:1], verbose=0)
    with constant_inputs_kept_as_tensors(keep_constants_as_tensors):
        analyzer = innvestigate.create_analyzer(rule, analyzer_model, **kwargs)
        relevance = np.asarray(analyzer.analyze(batch))
    return relevance.sum(axis=-1).astype(np.float32)


def fresh_lrp_model(config: ModelConfig, weights: Sequence[np.ndarray], **kwargs: Any) -> Any:
    """:func:`lrp_model` in a fresh Keras session, so that each analyzer gets a graph of its own.

    Clears the Keras session first (``tf.keras.backend.clear_session``): models
    built before are unusable afterwards.
    """
    import tensorflow as tf

    tf.keras.backend.clear_session()
    return lrp_model(config, weights, **kwargs)


def _rule_options(options: Mapping[str, Mapping[str, Any]] | None, rule: str) -> dict[str, Any]:
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"options must map rule names to analyzer arguments, got {type(options).__name__}")
    return dict((options or {}).get(rule, {}))


@dataclasses.dataclass(frozen=True)
class RuleMaps:
    """The LRP maps of the same images under several rules (see :func:`lrp_rule_maps`).

    Attributes
    ----------
    maps : dict of str to ndarray, shape (N, H, W)
        Relevance maps by rule.
    scores : dict of str to ndarray, shape (N,)
        The value each rule explained: the mean foreground logit of each image.
    seconds : dict of str to float
        Wall-clock seconds of each rule (model, analyzer and maps).

    Examples
    --------
    >>> import numpy as np
    >>> run = RuleMaps({"lrp.z": np.ones((2, 2, 2))}, {"lrp.z": np.array([4.0, 8.0])}, {"lrp.z": 3.0})
    >>> run.timing().to_dict("index")
    {'lrp.z': {'seconds': 3.0, 'seconds per image': 1.5}}
    >>> run.conservation().to_dict()
    {'lrp.z': 0.75}
    """

    maps: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    seconds: dict[str, float]

    @property
    def rules(self) -> list[str]:
        """The rules, in the order they ran."""
        return list(self.maps)

    def timing(self) -> pd.DataFrame:
        """Seconds and seconds per image of each rule, indexed by ``rule``."""
        return pd.DataFrame(
            [
                {
                    "rule": rule,
                    "seconds": self.seconds[rule],
                    "seconds per image": self.seconds[rule] / len(self.maps[rule]),
                }
                for rule in self.rules
            ]
        ).set_index("rule")

    def conservation(self) -> pd.Series:
        """Per rule, the median over the images of the relevance sum over the explained logit.

        1 for a rule that passes no relevance to biases or a stabiliser.
        """
        return pd.DataFrame(
            {rule: self.maps[rule].sum(axis=(1, 2)) / self.scores[rule] for rule in self.rules}
        ).median()

    def columns(self, rule: str) -> dict[str, Any]:
        """The columns of a rule's rows in the measures table: ``seconds``, ``relevance_sum``
        (one per image) and ``explained_logit`` (one per image); see :func:`measure_maps`."""
        return {
            "seconds": self.seconds[rule],
            "relevance_sum": self.maps[rule].sum(axis=(1, 2)),
            "explained_logit": self.scores[rule],
        }


def lrp_rule_maps(
    config: ModelConfig,
    weights: Sequence[np.ndarray],
    images: np.ndarray,
    rules: Sequence[str],
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> RuleMaps:
    """LRP maps of the same images under each rule, each rule in a fresh graph, timed.

    For each rule: :func:`fresh_lrp_model`, the explained value (its
    prediction) and :func:`lrp_maps`. Graph mode only.

    Parameters
    ----------
    config, weights
        The network (see :func:`lrp_model`).
    images : ndarray, shape (N, H, W, C)
        Preprocessed images.
    rules : sequence of str
        innvestigate LRP analyzer names, e.g. :data:`LRP_RULES`.
    options : mapping of str to mapping, optional
        Analyzer arguments by rule, e.g. ``{"lrp.epsilon": {"epsilon": 0.1}}``.

    Returns
    -------
    RuleMaps
    """
    maps: dict[str, np.ndarray] = {}
    scores: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for rule in names_list(rules, "rules"):
        start = time.perf_counter()
        analysed = fresh_lrp_model(config, weights)
        scores[rule] = analysed.predict(images, verbose=0)[:, 0]
        maps[rule] = lrp_maps(analysed, images, rule, **_rule_options(options, rule))
        seconds[rule] = time.perf_counter() - start
    return RuleMaps(maps, scores, seconds)


def lrp_randomisation_check(
    config: ModelConfig,
    weights: Sequence[np.ndarray],
    images: np.ndarray,
    rules: Sequence[str],
    reference: Mapping[str, np.ndarray],
    ids: Sequence[str],
    *,
    seed: int = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """The model-randomisation check for LRP: all trainable weights re-drawn, explained again.

    For each rule, a :func:`fresh_lrp_model` has all its trainable weights
    re-drawn (:func:`randomise_weights`; the fixed channel selector stays) and
    is explained with that rule; each map is compared with the trained
    network's map of the same image (``reference``). Graph mode only.

    Returns
    -------
    random_maps : dict of str to ndarray, shape (N, H, W)
        The maps of the randomised networks, by rule.
    similarity : DataFrame
        :func:`~nucleilib.study.explain.measures.randomised_similarity`: one row
        per rule and image, signed and of magnitudes.
    """
    random_maps = {}
    for rule in names_list(rules, "rules"):
        scrambled = randomise_weights(fresh_lrp_model(config, weights), seed=seed)
        random_maps[rule] = lrp_maps(scrambled, images, rule, **_rule_options(options, rule))
    return random_maps, randomised_similarity(reference, random_maps, ids, name="rule")


def lrp_cascade(
    config: ModelConfig,
    weights: Sequence[np.ndarray],
    images: np.ndarray,
    rule: str,
    reference: np.ndarray,
    stops: Sequence[str],
    *,
    seed: int = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    full_similarity: float | None = None,
) -> pd.DataFrame:
    """Cascading randomisation for one LRP rule: weights re-drawn from the output down to each stop.

    Parameters
    ----------
    config, weights, images
        As in :func:`lrp_rule_maps`.
    rule : str
        The rule.
    reference : ndarray, shape (N, H, W)
        The trained network's maps of that rule.
    stops : sequence of str
        Blocks to stop at (see :func:`~nucleilib.study.explain.randomise.cascade_steps`;
        unknown ones are skipped).
    seed, options
        As in :func:`lrp_randomisation_check`.
    full_similarity : float, optional
        The mean similarity of magnitudes with every weight re-drawn (from
        :func:`lrp_randomisation_check`), added as a last row ``"all (check above)"``.

    Returns
    -------
    DataFrame
        Columns ``randomised down to`` and ``similarity |R|``, the mean
        Spearman similarity of the relevance magnitudes to ``reference``.
    """
    rows = []
    for stop, names in cascade_steps(fresh_lrp_model(config, weights), stops):
        scrambled = randomise_weights(fresh_lrp_model(config, weights), names, seed=seed)
        maps = lrp_maps(scrambled, images, rule, **_rule_options(options, rule))
        rows.append({"randomised down to": stop, "similarity |R|": mean_similarity(reference, maps, absolute=True)})
    if full_similarity is not None:
        rows.append({"randomised down to": "all (check above)", "similarity |R|": float(full_similarity)})
    return pd.DataFrame(rows, columns=["randomised down to", "similarity |R|"])
