"""Checks shared by the modules of :mod:`nucleilib.study.explain` (private).

Argument checks that the whole package words the same way (positive
integers, choices) come from :mod:`nucleilib.validation`; these are the ones
about maps, masks, image batches and model outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Output channels by name (the order of ``ModelConfig.outputs``).
TARGETS: dict[str, int] = {"foreground": 0, "border": 1}


def model_output_channels(model: Any) -> int:
    """The number of output channels of a model with one ``(N, H, W, K)`` output."""
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        raise ValueError("model: expected a Keras model with exactly one output")
    shape = tuple(outputs[0].shape)
    if len(shape) != 4:
        raise ValueError(f"model: expected an output of shape (N, H, W, K), got {shape}")
    return int(shape[-1])


def channel_index(target: str | int, n_channels: int) -> int:
    """The channel of ``target`` (a name of :data:`TARGETS` or an index) among ``n_channels``."""
    if isinstance(target, str):
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)} or a channel index")
        channel = TARGETS[target]
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        channel = int(target)
    else:
        raise ValueError(f"target must be a name ({', '.join(TARGETS)}) or a channel index, got {target!r}")
    if not 0 <= channel < n_channels:
        raise ValueError(f"target {target!r} is channel {channel}, but the model has {n_channels} output channel(s)")
    return channel


def as_mask(mask: Any, name: str = "mask") -> np.ndarray:
    """A 2-D boolean array from a boolean or 0/1 array."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (H, W) array, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: empty array of shape {array.shape}")
    if array.dtype == np.bool_:
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name}: expected a boolean or 0/1 array, got dtype {array.dtype}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name}: expected a boolean or 0/1 array, got other values")
    return array.astype(bool)


def as_map(values: Any, name: str = "map") -> np.ndarray:
    """A finite 2-D float64 array."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (H, W) array, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: empty array of shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{name}: expected a numeric array, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def map_and_mask(values: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`as_map` and :func:`as_mask` of arrays that must have the same shape."""
    array, region = as_map(values), as_mask(mask)
    if array.shape != region.shape:
        raise ValueError(f"map of shape {array.shape} and mask of shape {region.shape} differ")
    return array, region


def as_batch(images: Any, model: Any) -> np.ndarray:
    """Validated float32 images (N, H, W, C) matching the model's input."""
    array = np.asarray(images)
    if array.ndim != 4:
        raise ValueError(f"image_batch: expected shape (N, H, W, C), got {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"image_batch: empty batch of shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"image_batch: expected numbers, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError("image_batch: contains NaN or infinite values")
    expected = tuple(model.inputs[0].shape)[1:]
    for axis, (want, got) in enumerate(zip(expected, array.shape[1:])):
        if want is not None and int(want) != got:
            raise ValueError(
                f"image_batch: the model expects inputs of shape (N, {expected}), got {array.shape} "
                f"(axis {axis + 1} differs)"
            )
    return array


def names_list(names: Any, what: str) -> list[str]:
    """A list of names from a sequence of names; one string is refused (it is one name, not a list)."""
    if isinstance(names, (str, bytes)):
        raise ValueError(f"{what} must be a sequence of names, not one string ({names!r})")
    return list(names)


def maps_by_name(maps: Any, what: str = "maps", *, same_shape: bool = True) -> dict[str, np.ndarray]:
    """A non-empty mapping of names to stacks of maps ``(N, H, W)`` (all of one shape with ``same_shape``)."""
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError(f"{what}: expected a non-empty mapping of names to maps of shape (N, H, W)")
    stacks = {str(name): np.asarray(values) for name, values in maps.items()}
    first = next(iter(stacks.values())).shape
    for name, stack in stacks.items():
        if stack.ndim != 3 or 0 in stack.shape:
            raise ValueError(f"{what}[{name!r}]: expected a non-empty stack of maps (N, H, W), got shape {stack.shape}")
        if same_shape and stack.shape != first:
            raise ValueError(f"{what}[{name!r}]: expected maps of the same images, shape {first}, got {stack.shape}")
    return stacks


def short_name(variable: Any) -> str:
    """``"kernel"`` for a variable named ``"enc1_conv1/kernel:0"`` (or ``"enc1_conv1_3/kernel:0"``)."""
    return str(variable.name).split("/")[-1].split(":")[0]


def normalised(values: np.ndarray) -> np.ndarray:
    """``values`` divided by their largest magnitude (zeros stay zeros)."""
    peak = float(np.abs(values).max())
    return values / peak if peak > 0 else np.zeros_like(values)
