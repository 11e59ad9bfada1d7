"""The figures shared by the two explanation chapters.

:func:`explanation_grid` draws image, truth, probability and one map per layer
or rule for some windows; :func:`placeholder_figure` stands in for a figure a
profile does not draw. Both are built outside pyplot, so a notebook shows them
once, as a cell's value. matplotlib and scikit-image are imported inside the
functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ...validation import one_of
from ._checks import as_mask
from .windows import Windows

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Map styles of :func:`explanation_grid`.
GRID_STYLES: tuple[str, ...] = ("heat", "signed")


def _new_figure(width: float, height: float) -> Figure:
    """A matplotlib figure outside pyplot (so a notebook shows it once, as the cell's value)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def explanation_grid(
    windows: Windows,
    probabilities: np.ndarray,
    heat_by_name: Mapping[str, np.ndarray],
    rows: Sequence[int],
    outline_masks: Sequence[np.ndarray | None] | np.ndarray,
    *,
    style: str = "heat",
    title: str = "",
) -> Figure:
    """A grid of explanation maps: one row per window, one map column per layer or rule.

    Each row shows the window's image (titled with its modality and id), the
    outlines of its annotated nuclei ("truth"), the foreground probability
    (magma, 0 to 1) and then one column per entry of ``heat_by_name``, titled
    with its key, with the outline of ``outline_masks`` drawn on it.

    Parameters
    ----------
    windows : Windows
        The explained windows (:func:`explanation_windows`): ``raw`` is shown,
        ``x`` is the grey background of ``"heat"`` maps.
    probabilities : ndarray, shape (N, H, W)
        Foreground probability of each window.
    heat_by_name : mapping of str to ndarray, shape (N, H, W)
        The maps, e.g. one per Grad-CAM layer or LRP rule, in column order.
    rows : sequence of int
        Indices of the windows to show, one figure row each.
    outline_masks : sequence of (ndarray of bool, shape (H, W)) or None
        One mask per window (indexed like ``windows``, so ``N`` entries),
        outlined on the maps; a window whose entry is None gets no outline.
    style : {"heat", "signed"}
        ``"heat"``: maps in [0, 1] (Grad-CAM), an ``inferno`` overlay on the
        grey network input with cyan outlines. ``"signed"``: signed maps
        (LRP), ``bwr`` (red positive, blue negative) from ``-L`` to ``L``,
        ``L`` the 99.5th percentile of ``|map|`` of the window, with black
        outlines.
    title : str
        Figure title (none when empty).

    Returns
    -------
    matplotlib.figure.Figure
        Not registered with pyplot: a notebook shows it once, as the value of
        a cell's last expression, and it is freed with its last reference.

    Raises
    ------
    ValueError
        For an unknown style, no maps or rows, row indices out of range, or
        maps, probabilities or masks whose number or shape does not match the
        windows.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((2, 16, 16), np.uint16); labels[:, 4:9, 4:9] = 1
    >>> windows = Windows(["a", "b"], ["fluorescence", "brightfield"], np.full((2, 16, 16, 3), 0.5),
    ...                   np.zeros((2, 16, 16, 3), np.uint8), labels)
    >>> maps = np.random.default_rng(0).random((2, 16, 16))
    >>> fig = explanation_grid(windows, maps, {"dec1_relu2": maps}, [0, 1], windows.truth)
    >>> len(fig.axes), [ax.get_title() for ax in fig.axes[1:4]]
    (8, ['truth', 'foreground probability', 'dec1_relu2'])
    """
    one_of(style, GRID_STYLES, "style")
    if not isinstance(windows, Windows):
        raise ValueError(f"windows must be a Windows (see explanation_windows), got {type(windows).__name__}")
    n_windows = len(windows.ids)
    shape = tuple(windows.x.shape[1:3])
    for name, array in (("windows.raw", windows.raw), ("windows.truth_labels", windows.truth_labels)):
        if len(array) != n_windows or tuple(np.shape(array)[1:3]) != shape:
            raise ValueError(f"{name}: expected {n_windows} windows of {shape}, got shape {np.shape(array)}")
    expected = (n_windows, *shape)
    probability = np.asarray(probabilities)
    if probability.shape != expected:
        raise ValueError(f"probabilities: expected shape {expected} (one map per window), got {probability.shape}")
    if not isinstance(heat_by_name, Mapping) or not heat_by_name:
        raise ValueError("heat_by_name: expected a non-empty mapping of column titles to maps")
    heats = {str(name): np.asarray(heat) for name, heat in heat_by_name.items()}
    for name, heat in heats.items():
        if heat.shape != expected:
            raise ValueError(
                f"heat_by_name[{name!r}]: expected shape {expected} (one map per window), got {heat.shape}"
            )
    if isinstance(rows, (str, bytes)):
        raise ValueError("rows must be a sequence of window indices")
    picked = list(rows)
    if not picked:
        raise ValueError("rows: no window to show")
    for k in picked:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < n_windows:
            raise ValueError(f"rows: {k!r} is not the index of one of the {n_windows} windows")
    if len(outline_masks) != n_windows:
        raise ValueError(
            f"outline_masks: expected one mask (or None) per window, {n_windows}, got {len(outline_masks)}"
        )
    outlines = {}
    for k in picked:
        mask = outline_masks[k]
        outlines[k] = None if mask is None else as_mask(mask, f"outline_masks[{k}]")
        if outlines[k] is not None and outlines[k].shape != shape:
            raise ValueError(f"outline_masks[{k}]: expected shape {shape}, got {outlines[k].shape}")

    from skimage.segmentation import find_boundaries

    columns = 3 + len(heats)
    figure = _new_figure(2.2 * columns, 2.3 * len(picked))
    axes = figure.subplots(len(picked), columns, squeeze=False)
    for r, k in enumerate(picked):
        axes[r, 0].imshow(windows.raw[k])
        axes[r, 0].set_title(f"{windows.modality[k]}\n{windows.ids[k][:10]}", fontsize=8)
        axes[r, 1].imshow(find_boundaries(windows.truth_labels[k]), cmap="gray")
        axes[r, 1].set_title("truth", fontsize=8)
        axes[r, 2].imshow(probability[k], cmap="magma", vmin=0, vmax=1)
        axes[r, 2].set_title("foreground probability", fontsize=8)
        for c, (name, heat) in enumerate(heats.items(), start=3):
            ax = axes[r, c]
            if style == "heat":
                ax.imshow(np.asarray(windows.x[k]).mean(axis=-1), cmap="gray", vmin=0, vmax=1)  # the input, in grey
                ax.imshow(heat[k], cmap="inferno", alpha=0.55, vmin=0, vmax=1)
                colour, line_width = "cyan", 0.6
            else:
                limit = float(np.percentile(np.abs(heat[k]), 99.5)) or 1.0
                ax.imshow(heat[k], cmap="bwr", vmin=-limit, vmax=limit)
                colour, line_width = "black", 0.4
            if outlines[k] is not None and outlines[k].any():
                ax.contour(outlines[k], levels=[0.5], colors=colour, linewidths=line_width)
            ax.set_title(name, fontsize=8)
        for ax in axes[r]:
            ax.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def placeholder_figure(message: str, *, width: float = 6.0, height: float = 1.2) -> Figure:
    """A figure that only says ``message``, for a figure a profile does not draw.

    Keeps a chapter's figure numbers and cross-references the same whatever
    the profile (e.g. "not run in this profile").

    Returns
    -------
    matplotlib.figure.Figure
        Not registered with pyplot (see :func:`explanation_grid`).

    Examples
    --------
    >>> figure = placeholder_figure("not run in this profile")
    >>> [text.get_text() for text in figure.axes[0].texts]
    ['not run in this profile']
    """
    if not isinstance(message, str) or not message.strip():
        raise ValueError("message: expected a non-empty string")
    figure = _new_figure(width, height)
    ax = figure.subplots()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.axis("off")
    return figure
