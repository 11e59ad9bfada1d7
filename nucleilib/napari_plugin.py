"""napari plugin: segment the selected image layer, and read DSB sample folders.

Installed with the ``napari`` extra (``pip install -e '.[napari]'``); its npe2 manifest is
``nucleilib/napari.yaml``. Two contributions:

* the widget *Segment nuclei* (Plugins menu): segments the chosen image layer with a
  shipped model (backend, diameter and separation as options) and adds a labels layer whose
  ``features`` are the per-nucleus table (label, area, centroid), shown below the options;
  *Save* writes the labels as a TIFF and the table as CSV into a folder, refusing to replace
  files unless asked;
* a reader for the DSB folder layout: a sample folder (``<id>/images/<id>.png`` and
  ``<id>/masks/*.png``) opens as the image plus its annotated nuclei as a labels layer.

The segmentation itself is :meth:`nucleilib.segmenter.Segmenter.segment`; napari is
imported only here.
"""

import functools
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NucleiError

#: Choices shown in the widget (as in ``nuclei predict``).
BACKENDS = ("keras", "tflite-int8", "tflite-float16", "xla")
SEPARATIONS = ("model default", "components", "watershed", "borders")


#: Where the save dialog starts.
HOME = Path.home()


class PluginError(NucleiError, ValueError):
    """An input the widget cannot segment or an output it will not write."""


@functools.lru_cache(maxsize=4)
def _segmenter(model: str, backend: str, diameter: str | float | None) -> Any:
    from .segmenter import Segmenter

    return Segmenter.from_pretrained(model, backend=backend, diameter=diameter)


def parse_diameter(text: str) -> str | float | None:
    """The widget's diameter field: ``auto``, ``none`` or a number of pixels.

    Examples
    --------
    >>> parse_diameter("auto"), parse_diameter(" None "), parse_diameter("30")
    ('auto', None, 30.0)
    """
    value = text.strip().lower()
    if value in ("auto", ""):
        return "auto"
    if value == "none":
        return None
    try:
        pixels = float(value)
    except ValueError:
        raise PluginError(f"diameter {text!r}: give auto, none or a number of pixels") from None
    if not pixels > 0:
        raise PluginError(f"diameter {text!r}: a diameter is a positive number of pixels")
    return pixels


def image_of_layer(data: Any, name: str, rgb: bool) -> np.ndarray:
    """A napari image layer's data as one 2-D image (grey, or RGB/RGBA when ``rgb``).

    Raises
    ------
    PluginError
        For a stack, a multi-scale pyramid taken whole, or an empty layer, naming the layer.
    """
    if isinstance(data, (list, tuple)):  # multiscale: the full-resolution level
        data = data[0]
    array = np.asarray(data)
    spatial = array.ndim - (1 if rgb else 0)
    if spatial != 2:
        raise PluginError(
            f"layer {name!r} has {spatial} spatial dimensions {array.shape}; the widget segments one 2-D image "
            f"(take a single plane with Image > Split Stack first)"
        )
    if array.size == 0:
        raise PluginError(f"layer {name!r} is empty")
    return array


def segment_layer_data(
    data: Any,
    *,
    name: str = "image",
    rgb: bool = False,
    model: str = "unet-dsb2018",
    backend: str = "keras",
    diameter: str = "auto",
    separation: str = "model default",
) -> tuple[np.ndarray, Any]:
    """Labels and per-nucleus table of one layer's data (what the widget runs).

    Returns
    -------
    labels : ndarray of uint32, shape (H, W)
    table : DataFrame
        ``label``, ``area``, ``centroid_y``, ``centroid_x``, one row per nucleus.
    """
    from .inference import object_table

    image = image_of_layer(data, name, rgb)
    segmenter = _segmenter(model, backend, parse_diameter(diameter))
    method = None if separation == "model default" else separation
    labels = segmenter.segment(image, separation=method).astype(np.uint32)
    return labels, object_table(labels)


def save_results(
    labels: np.ndarray, table: Any, folder: str | Path, name: str, *, overwrite: bool = False
) -> list[Path]:
    """Write ``<name>_labels.tif`` and ``<name>_nuclei.csv`` into ``folder``.

    Raises
    ------
    PluginError
        When ``folder`` is not a folder, or a file exists and ``overwrite`` is not set.
    """
    from .io import write_labels, write_table

    folder = Path(folder)
    if not folder.is_dir():
        raise PluginError(f"{folder}: not a folder; choose an existing folder to save into")
    targets = [folder / f"{name}_labels.tif", folder / f"{name}_nuclei.csv"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise PluginError(f"{', '.join(existing)}: exists; tick 'overwrite' to replace")
    write_labels(labels, targets[0])
    write_table(table, targets[1])
    return targets


def segment_widget() -> Any:
    """The *Segment nuclei* dock widget (a magicgui container)."""
    import napari
    from magicgui import magicgui
    from magicgui.widgets import Container, Label, Table

    table_view = Table(value={"label": [], "area": [], "centroid_y": [], "centroid_x": []}, name="table")
    status = Label(value="", name="status")
    results: dict[str, Any] = {}

    @magicgui(
        call_button="Segment",
        backend={"choices": BACKENDS},
        separation={"choices": SEPARATIONS},
        diameter={"tooltip": "auto (estimated per image), none (the image's own scale) or pixels"},
    )
    def segment(
        image: napari.layers.Image,
        backend: str = "keras",
        diameter: str = "auto",
        separation: str = "model default",
        model: str = "unet-dsb2018",
    ) -> napari.types.LayerDataTuple:
        if image is None:
            status.value = "no image layer: open an image first"
            return None
        labels, table = segment_layer_data(
            image.data,
            name=image.name,
            rgb=image.rgb,
            model=model,
            backend=backend,
            diameter=diameter,
            separation=separation,
        )
        table_view.value = table.to_dict("list")
        results.update(labels=labels, table=table, name=image.name)
        status.value = f"{image.name}: {len(table)} nuclei"
        metadata = {"image": image.name, "model": model, "backend": backend, "diameter": diameter}
        properties = {"name": f"{image.name} nuclei", "features": table, "metadata": metadata}
        return labels, properties, "labels"

    @magicgui(call_button="Save", folder={"mode": "d", "label": "save into"})
    def save(folder: Path = HOME, overwrite: bool = False) -> None:
        if not results:
            status.value = "nothing to save yet: segment an image first"
            return
        written = save_results(results["labels"], results["table"], folder, results["name"], overwrite=overwrite)
        status.value = "saved " + ", ".join(p.name for p in written)

    # The parts are reachable by name: widget.segment, widget.status, widget.table, widget.save.
    return Container(widgets=[segment, status, table_view, save], labels=False)


def read_dsb(path: str | list[str]) -> Any:
    """npe2 reader hook: a reader function for a DSB sample folder, or None for anything else."""
    if isinstance(path, list):
        return None
    folder = Path(path)
    if not (folder.is_dir() and (folder / "images").is_dir() and (folder / "masks").is_dir()):
        return None
    return _read_sample_layers


def _read_sample_layers(path: str) -> list[tuple[Any, dict[str, Any], str]]:
    from .data import read_sample

    sample = read_sample(path)
    return [
        (sample.image, {"name": sample.image_id, "rgb": True}, "image"),
        (sample.labels, {"name": f"{sample.image_id} masks"}, "labels"),
    ]
