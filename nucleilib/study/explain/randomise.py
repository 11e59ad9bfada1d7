"""The model-randomisation sanity check of Adebayo et al. (2018): copies of a network with
some weights re-drawn.

:func:`randomise_weights` re-draws the trainable weights of chosen layers in a
copy of the model; :func:`layer_blocks` groups the layers into blocks from the
output to the input and :func:`cascade_steps` lists the layers re-drawn at each
step of the cascading randomisation. Works in eager and in graph mode (the
Grad-CAM and the LRP chapter both use it); it never switches modes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...validation import non_negative_int, one_of
from ._checks import names_list, short_name

#: Randomisation methods of :func:`randomise_weights`.
RANDOMISATIONS: tuple[str, ...] = ("initializer", "normal")


def layer_blocks(model: Any) -> list[tuple[str, list[str]]]:
    """The layers with trainable weights, grouped by block, from the output to the input.

    A block is the part of a layer's name before its first underscore
    (``"dec1_conv2"`` -> ``"dec1"``; ``"up1"``, ``"logits"``), so a U-Net gives
    ``logits, dec1, up1, dec2, ..., bottleneck, enc4, ..., enc1``: the order of
    the cascading randomisation of Adebayo et al. (2018).

    Returns
    -------
    list of (str, list of str)
        Block name and its layers' names, in the model's order within a block.

    Examples
    --------
    >>> from nucleilib.models import ModelConfig, build_unet
    >>> blocks = layer_blocks(build_unet(ModelConfig(base_filters=4, depth=2)))
    >>> [block for block, _ in blocks]
    ['logits', 'dec1', 'up1', 'dec2', 'up2', 'bottleneck', 'enc2', 'enc1']
    >>> blocks[1]
    ('dec1', ['dec1_conv1', 'dec1_bn1', 'dec1_conv2', 'dec1_bn2', 'dec1_shortcut'])
    """
    blocks: dict[str, list[str]] = {}
    for layer in reversed(model.layers):
        if layer.trainable_weights:
            blocks.setdefault(layer.name.split("_")[0], []).insert(0, layer.name)
    return list(blocks.items())


def _initializer_draw(layer: Any, variable: Any, seed: int) -> Any:
    """A tensor of fresh values of one variable from its layer's initialiser (seeded), or None."""
    initializer = getattr(layer, f"{short_name(variable)}_initializer", None)
    if initializer is None:
        return None
    config = initializer.get_config()
    if "seed" in config:
        config["seed"] = seed
    fresh = initializer.__class__.from_config(config)
    return fresh(tuple(int(d) for d in variable.shape), dtype=variable.dtype)


def randomise_weights(
    model: Any,
    layers: Sequence[str] | None = None,
    seed: int = 0,
    *,
    method: str = "initializer",
) -> Any:
    """A copy of ``model`` with the trainable weights of some layers re-drawn at random.

    The model-randomisation sanity check of Adebayo et al. (2018): an
    explanation that hardly changes when the weights are destroyed does not
    explain the model. The copy is made with ``tf.keras.models.clone_model``
    (same layer names) and the original's weights; ``model`` is not touched.

    Parameters
    ----------
    model : tf.keras.Model
    layers : sequence of str, optional
        Names of the layers to randomise; default all layers with trainable
        weights (so a frozen channel selector stays as it is). Non-trainable
        weights (batch-normalisation statistics) are always kept.
    seed : int
        Seed of the new weights (the same seed gives the same copy).
    method : str
        ``"initializer"``: draw each weight from its layer's own initialiser
        (``he_normal`` kernels, zero biases, unit BN scales...);
        ``"normal"``: from a normal distribution with the mean and standard
        deviation of the trained array.

    Returns
    -------
    tf.keras.Model

    Raises
    ------
    ValueError
        For unknown layers, layers without trainable weights, or an unknown
        method or seed.

    Examples
    --------
    >>> import numpy as np
    >>> from nucleilib.models import ModelConfig, build_unet
    >>> model = build_unet(ModelConfig(base_filters=4, depth=2))
    >>> scrambled = randomise_weights(model, ["logits", "dec1_conv2"], seed=1)
    >>> [layer.name for layer in scrambled.layers] == [layer.name for layer in model.layers]
    True
    >>> changed = [layer.name for layer in model.layers
    ...            if any(not np.array_equal(a, b) for a, b in zip(layer.get_weights(),
    ...                                                             scrambled.get_layer(layer.name).get_weights()))]
    >>> changed
    ['dec1_conv2', 'logits']
    """
    import tensorflow as tf

    one_of(method, RANDOMISATIONS, "method")
    non_negative_int(seed, "seed")
    weighted = [layer.name for layer in model.layers if layer.trainable_weights]
    if layers is None:
        names = weighted
    else:
        if isinstance(layers, str):
            raise ValueError("layers must be a sequence of layer names, not one string")
        names = list(layers)
        existing = {layer.name for layer in model.layers}
        unknown = [name for name in names if name not in existing]
        if unknown:
            raise ValueError(f"model {model.name!r} has no layer(s) {', '.join(map(repr, unknown))}")
        frozen = [name for name in names if name not in weighted]
        if frozen:
            raise ValueError(f"layer(s) {', '.join(map(repr, frozen))} have no trainable weights to randomise")
    clone = tf.keras.models.clone_model(model)
    originals = model.get_weights()
    clone.set_weights(originals)
    current = {id(variable): value for variable, value in zip(clone.weights, originals)}
    rng = np.random.default_rng(seed)
    drawn: list[tuple[Any, Any]] = []  # (variable, initialiser tensor): evaluated together below
    updates: list[tuple[Any, np.ndarray]] = []
    for k, name in enumerate(names):
        layer = clone.get_layer(name)
        for j, variable in enumerate(layer.trainable_weights):
            tensor = None
            if method == "initializer":
                tensor = _initializer_draw(layer, variable, seed * 100_003 + 1_000 * k + j)
            if tensor is not None:
                drawn.append((variable, tensor))
                continue
            value = current[id(variable)]
            fresh = rng.normal(float(value.mean()), float(value.std()) or 1.0, size=value.shape)
            updates.append((variable, fresh.astype(value.dtype)))
    if drawn:
        # One session run in graph mode, instead of one per variable.
        values = tf.keras.backend.batch_get_value([tensor for _, tensor in drawn])
        updates += [
            (variable, np.asarray(value, dtype=current[id(variable)].dtype))
            for (variable, _), value in zip(drawn, values)
        ]
    tf.keras.backend.batch_set_value(updates)
    return clone


def cascade_steps(model: Any, stops: Sequence[str] | None = None) -> list[tuple[str, list[str]]]:
    """The steps of the cascading randomisation: the layers re-drawn down to each block.

    Parameters
    ----------
    model : tf.keras.Model
    stops : sequence of str, optional
        Blocks (of :func:`layer_blocks`) to stop at, in the order given; names
        that are not blocks of ``model`` are skipped (a profile may name the
        blocks of a deeper network). Default: every block, from the output.

    Returns
    -------
    list of (str, list of str)
        Each stop and the names of all layers with trainable weights from the
        output down to and including that block, ready for
        :func:`randomise_weights`.

    Examples
    --------
    >>> from nucleilib.models import ModelConfig, build_unet
    >>> model = build_unet(ModelConfig(base_filters=4, depth=2))
    >>> [(stop, len(names)) for stop, names in cascade_steps(model, ["dec1", "logits", "dec9"])]
    [('dec1', 6), ('logits', 1)]
    >>> cascade_steps(model)[1]
    ('dec1', ['logits', 'dec1_conv1', 'dec1_bn1', 'dec1_conv2', 'dec1_bn2', 'dec1_shortcut'])
    """
    blocks = layer_blocks(model)
    known = [block for block, _ in blocks]
    wanted = known if stops is None else [stop for stop in names_list(stops, "stops") if stop in known]
    return [(stop, [name for _, names in blocks[: known.index(stop) + 1] for name in names]) for stop in wanted]
