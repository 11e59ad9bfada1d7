"""`nuclei predict` and `nuclei evaluate` on images the tests make, with a tiny untrained model."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nucleilib import cli, models


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = models.ModelConfig(base_filters=2, depth=2, outputs=("foreground", "border"), min_size=1)
    folder = tmp_path_factory.mktemp("model")
    models.save_model(models.build_unet(config), config, folder)
    return folder


def disc_image(size: tuple[int, int] = (64, 80), bits: int = 8, channels: int = 3) -> np.ndarray:
    yy, xx = np.mgrid[: size[0], : size[1]]
    mask = (yy - size[0] / 2) ** 2 + (xx - size[1] / 2) ** 2 < (min(size) / 4) ** 2
    top = 255 if bits == 8 else 65535
    grey = np.where(mask, top, top // 10).astype(np.uint8 if bits == 8 else np.uint16)
    if channels == 1:
        return grey
    stacked = np.stack([grey] * 3, axis=-1)
    if channels == 4:
        stacked = np.concatenate([stacked, np.full(size + (1,), top, stacked.dtype)], axis=-1)
    return stacked


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(disc_image()).save(folder / "rgb.png")
    Image.fromarray(disc_image(channels=4)).save(folder / "rgba.png")
    Image.fromarray(disc_image(channels=1)).save(folder / "grey.jpg")
    import tifffile

    tifffile.imwrite(folder / "deep.tif", disc_image(bits=16, channels=1))
    return folder


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def predict(*args: str) -> int:
    return cli.main(["predict", *args])


def subprocess_nuclei(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``nuclei`` console script, as a user runs it."""
    script = Path(sys.executable).with_name("nuclei")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300)


def test_predict_writes_labels_csvs_and_overlays_without_touching_the_inputs(
    inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    before = tree_digest(inputs)
    out = tmp_path / "out"
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model), "--overlay", "--threshold", "0.5") == 0
    assert tree_digest(inputs) == before
    for stem in ("rgb", "rgba", "grey", "deep"):
        labels = np.asarray(Image.open(out / f"{stem}_labels.png"))
        assert labels.dtype == np.uint16 and labels.shape == (64, 80)
        assert (out / f"{stem}_overlay.png").is_file()
    import pandas as pd

    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["output"]) == sorted(f"{s}_labels.png" for s in ("rgb", "rgba", "grey", "deep"))
    assert (summary["status"] == "ok").all()
    nuclei = pd.read_csv(out / "nuclei.csv")
    assert list(nuclei.columns) == ["image", "label", "area", "centroid_y", "centroid_x"]
    assert len(nuclei) == summary["nuclei"].sum()


def test_predict_tiff_output_and_a_large_image_is_tiled(tmp_path: Path, tiny_model: Path) -> None:
    big = tmp_path / "in" / "big.png"
    big.parent.mkdir()
    Image.fromarray(disc_image((300, 410))).save(big)
    out = tmp_path / "out"
    assert predict(str(big), "-o", str(out), "--model", str(tiny_model), "--format", "tif", "--tile", "128") == 0
    import tifffile

    labels = tifffile.imread(out / "big_labels.tif")
    assert labels.shape == (300, 410) and labels.dtype == np.uint16


def test_predict_refuses_to_overwrite_and_keeps_existing_files(
    inputs: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    precious = out / "rgb_labels.png"
    precious.write_bytes(b"do not lose me")
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model)) == 1
    err = capsys.readouterr().err
    assert "rgb_labels.png" in err and "--overwrite" in err
    assert precious.read_bytes() == b"do not lose me"
    assert not (out / "summary.csv").exists()
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model), "--overwrite") == 0
    assert precious.read_bytes() != b"do not lose me"


@pytest.mark.parametrize("inside", ["same", "sub"])
def test_predict_never_writes_into_an_input_folder(inputs: Path, tiny_model: Path, capsys, inside: str) -> None:
    out = inputs if inside == "same" else inputs / "results"
    before = tree_digest(inputs)
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model)) == 2
    assert "input folder" in capsys.readouterr().err
    assert tree_digest(inputs) == before


def test_a_bad_file_gets_one_line_and_the_others_go_on(inputs: Path, tiny_model: Path, tmp_path: Path, capsys) -> None:
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = inputs / "rgb.png"
    truncated = inputs / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    out = tmp_path / "out"
    assert predict(str(inputs), str(tmp_path / "missing.png"), "-o", str(out), "--model", str(tiny_model)) == 1
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("nuclei: error:")]
    assert any("broken.png" in line for line in err_lines)
    assert any("truncated.png" in line for line in err_lines)
    assert any("missing.png" in line and "no such file" in line for line in err_lines)
    assert (out / "rgb_labels.png").is_file() and (out / "deep_labels.png").is_file()
    import pandas as pd

    summary = pd.read_csv(out / "summary.csv")
    assert (summary["status"] == "ok").sum() == 4
    assert summary.loc[summary["image"].str.endswith("broken.png"), "status"].str.startswith("error").all()


def test_a_non_image_file_is_one_error_line_naming_it_without_a_traceback(
    inputs: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    notes = tmp_path / "docs" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("these are my notes, not an image\n")
    out = tmp_path / "out"
    assert predict(str(notes), str(inputs / "rgb.png"), "-o", str(out), "--model", str(tiny_model)) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("nuclei: error: ") and str(notes) in errors[0]
    assert "Traceback" not in captured.err + captured.out
    assert (out / "rgb_labels.png").is_file() and not (out / "notes_labels.png").exists()
    assert "1 image(s) segmented, 1 problem(s)" in captured.out


def test_the_console_script_names_a_non_image_file_in_one_line(tiny_model: Path, tmp_path: Path) -> None:
    notes = tmp_path / "docs" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("not an image")
    result = subprocess_nuclei("predict", str(notes), "-o", str(tmp_path / "out"), "--model", str(tiny_model))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("nuclei: error: ")]
    assert len(errors) == 1 and str(notes) in errors[0] and "cannot decode image" in errors[0]
    assert "0 image(s) segmented, 1 problem(s)" in result.stdout


def test_a_tile_too_small_for_the_overlap_is_a_one_line_error(
    inputs: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    assert (
        predict(str(inputs / "rgb.png"), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--tile", "64") == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("nuclei: error: tile must be a multiple of 16 above 64") and "\n" not in err


def test_repeated_names_from_two_folders_do_not_collide(tmp_path: Path, tiny_model: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray(disc_image()).save(tmp_path / sub / "cells.png")
    out = tmp_path / "out"
    assert predict(str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(out), "--model", str(tiny_model)) == 0
    assert (out / "cells_labels.png").is_file() and (out / "cells-2_labels.png").is_file()


def test_unknown_model_is_a_one_line_error(inputs: Path, tmp_path: Path, capsys) -> None:
    assert predict(str(inputs), "-o", str(tmp_path / "out"), "--model", "no-such-model") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("nuclei: error:") and "no-such-model" in err and "\n" not in err


def test_evaluate_scores_a_perfect_prediction_as_one(tmp_path: Path, capsys) -> None:
    gt = tmp_path / "gt"
    labels = np.zeros((40, 50), np.uint16)
    labels[5:15, 5:15] = 1
    labels[20:35, 25:45] = 2
    for sample in ("s1", "s2"):
        (gt / sample / "images").mkdir(parents=True)
        (gt / sample / "masks").mkdir()
        Image.fromarray(np.stack([(labels > 0).astype(np.uint8) * 200] * 3, -1)).save(
            gt / sample / "images" / f"{sample}.png"
        )
        for k in (1, 2):
            Image.fromarray(((labels == k) * 255).astype(np.uint8)).save(gt / sample / "masks" / f"m{k}.png")
    pred = tmp_path / "pred"
    pred.mkdir()
    Image.fromarray(labels).save(pred / "s1_labels.png")
    shuffled = np.where(labels == 1, 7, np.where(labels == 2, 3, 0)).astype(np.uint16)
    Image.fromarray(shuffled).save(pred / "s2.png")
    csv = tmp_path / "metrics.csv"
    assert cli.main(["evaluate", str(pred), str(gt), "--csv", str(csv)]) == 0
    import pandas as pd

    frame = pd.read_csv(csv)
    assert len(frame) == 2
    assert np.allclose(frame["dsb_score"], 1.0) and np.allclose(frame["iou"], 1.0)
    assert "2 image(s) evaluated" in capsys.readouterr().out


def test_shipped_model_loads_by_name_and_segments_a_disc() -> None:
    if "unet-dsb2018" not in models.available_models():
        pytest.skip("no shipped model in this checkout yet")
    from nucleilib.segmenter import Segmenter

    model, _ = models.load_model("unet-dsb2018")
    card = models.model_card("unet-dsb2018")
    assert card["parameters"] == model.count_params()
    # A blurred bright disc on a dark background, like a fluorescent nucleus. (A flat,
    # hard-edged disc of radius 15 comes out as a ring: the model learnt real nuclei.)
    from scipy import ndimage

    yy, xx = np.mgrid[:128, :128]
    disc = ndimage.gaussian_filter(np.where((yy - 64) ** 2 + (xx - 64) ** 2 < 10**2, 200.0, 0.0), 2) + 10
    image = np.repeat(disc[..., None], 3, axis=-1).astype(np.uint8)
    labels = Segmenter.from_pretrained("unet-dsb2018").segment(image)
    assert labels.max() == 1
    assert labels[64, 64] == 1 and labels[5, 5] == 0
    assert 0.7 < (labels > 0).sum() / (np.pi * 10**2) < 1.5


@pytest.mark.realdata
def test_shipped_model_segments_real_test_images(real_data_root: Path) -> None:
    """A regression floor for the shipped model on fluorescence images of its test split."""
    if "unet-dsb2018" not in models.available_models():
        pytest.skip("no shipped model in this checkout yet")
    import pandas as pd

    from nucleilib.data import load_dataset
    from nucleilib.evaluation import evaluate_pairs
    from nucleilib.segmenter import Segmenter

    root = Path(__file__).resolve().parents[1]
    split = pd.read_csv(root / "artefacts" / "cpu" / "splits" / "split-original.csv")
    test_ids = split.loc[(split["subset"] == "test") & (split["modality"] == "fluorescence"), "image_id"][:4]
    samples = load_dataset(real_data_root, ids=test_ids, workers=1)
    segmenter = Segmenter.from_pretrained("unet-dsb2018")
    preds = [segmenter.segment(s.image) for s in samples]
    scores = evaluate_pairs([s.labels for s in samples], preds, ids=list(test_ids))
    assert scores["iou"].mean() > 0.7
    assert scores["dsb_score"].mean() > 0.4


# --------------------------------------------------------------------------- --backend


@pytest.fixture(scope="module")
def tflite_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model folder again, with a model-float16.tflite beside its weights (no int8 file)."""
    import shutil

    from nucleilib.export import save_tflite, to_tflite

    folder = tmp_path_factory.mktemp("tflite-model") / "tiny"
    shutil.copytree(tiny_model, folder)
    model, _ = models.load_model_folder(folder)
    save_tflite(to_tflite(model, "float16"), folder, "float16")
    return folder


@pytest.mark.parametrize("backend", ["tflite-float16", "xla"])
def test_predict_with_another_backend_writes_the_same_outputs(
    inputs: Path, tflite_model: Path, tmp_path: Path, backend: str
) -> None:
    import pandas as pd

    results = {}
    for name in ("keras", backend):
        out = tmp_path / name
        assert (
            predict(
                str(inputs / "rgb.png"),
                str(inputs / "deep.tif"),
                "-o",
                str(out),
                "--model",
                str(tflite_model),
                "--backend",
                name,
            )
            == 0
        )
        results[name] = out
    assert sorted(p.name for p in results["keras"].iterdir()) == sorted(p.name for p in results[backend].iterdir())
    keras_summary = pd.read_csv(results["keras"] / "summary.csv")
    other_summary = pd.read_csv(results[backend] / "summary.csv")
    assert list(other_summary.columns) == list(keras_summary.columns)
    assert (other_summary["status"] == "ok").all()
    labels = np.asarray(Image.open(results[backend] / "rgb_labels.png"))
    assert labels.shape == (64, 80) and labels.dtype == np.uint16


def test_an_unavailable_backend_is_a_one_line_error_naming_the_file(
    inputs: Path, tflite_model: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    assert predict(str(inputs), "-o", str(out), "--model", str(tflite_model), "--backend", "tflite-int8") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("nuclei: error:") and "\n" not in err
    assert str(tflite_model / "model-int8.tflite") in err
    assert not out.exists()


def test_an_unknown_backend_is_a_usage_error(inputs: Path, tiny_model: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        predict(str(inputs), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--backend", "onnx")
    assert caught.value.code == 2
    assert "--backend" in capsys.readouterr().err


# --------------------------------------------------------------------------- the parser


def test_separation_choices_are_the_inference_methods() -> None:
    from nucleilib.inference import METHODS

    assert cli.SEPARATION_CHOICES == METHODS


def test_backend_choices_are_the_backends() -> None:
    from nucleilib.backends import BACKENDS

    assert cli.BACKEND_CHOICES == BACKENDS


def test_colour_input_choices_are_the_preprocessing_options() -> None:
    from nucleilib.preprocess import COLOUR_INPUTS

    assert cli.COLOUR_INPUT_CHOICES == COLOUR_INPUTS


def test_label_formats_are_what_write_labels_writes(tmp_path: Path) -> None:
    from nucleilib.io import LABEL_FORMATS, write_labels

    for fmt in LABEL_FORMATS:
        assert write_labels(np.ones((4, 4), np.int32), tmp_path / f"x.{fmt}").is_file()


def test_help_does_not_import_tensorflow_or_scikit_image() -> None:
    code = (
        "import sys\n"
        "from nucleilib import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('tensorflow', 'skimage', 'nucleilib.study.runner') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_study_commands_plug_in_through_the_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {e.name: e.value for e in entry_points(group=cli.COMMANDS_GROUP)}
    assert names.get("study") == "nucleilib.study.cli:register"
    listed = subprocess_nuclei("--help")
    assert listed.returncode == 0
    for command in ("predict", "evaluate", "fetch", "study", "book"):
        assert command in listed.stdout
    study = subprocess_nuclei("study", "--help")
    assert study.returncode == 0, study.stderr
    assert "--profile" in study.stdout and "--only" in study.stdout and "smoke" in study.stdout
    book = subprocess_nuclei("book", "--help")
    assert book.returncode == 0 and "--no-strict" in book.stdout


def test_a_plugin_command_runs_and_its_errors_are_one_line(monkeypatch, capsys) -> None:
    """A command registered under the entry point group is parsed, run, and its NucleiError shown in one line."""
    from nucleilib.errors import NucleiError

    def register(commands):
        commands.add_parser("hello", help="say hello")

        def run(args) -> int:
            raise NucleiError("hello: deliberately broken")

        return {"hello": run}

    class Entry:
        name = "hello"

        def load(self):
            return register

    monkeypatch.setattr(
        "importlib.metadata.entry_points", lambda group: [Entry()] if group == cli.COMMANDS_GROUP else []
    )
    assert cli.main(["hello"]) == 1
    assert capsys.readouterr().err.strip() == "nuclei: error: hello: deliberately broken"


def test_predict_diameter_rescales_a_scale_aware_model_and_records_it(
    inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    import pandas as pd

    aware = tmp_path / "aware"
    shutil.copytree(tiny_model, aware)
    config = json.loads((aware / "config.json").read_text())
    (aware / "config.json").write_text(json.dumps({**config, "diameter": 20.0}))
    out = tmp_path / "out"
    assert predict(str(inputs), "-o", str(out), "--model", str(aware), "--diameter", "40", "--tta", "4") == 0
    summary = pd.read_csv(out / "summary.csv")
    assert (summary["diameter"] == 40.0).all() and (summary["scale"] == 0.5).all()
    for stem in ("rgb", "grey"):
        assert np.asarray(Image.open(out / f"{stem}_labels.png")).shape == (64, 80)
    native = tmp_path / "native"
    assert predict(str(inputs), "-o", str(native), "--model", str(aware), "--diameter", "none") == 0
    assert (pd.read_csv(native / "summary.csv")["scale"] == 1.0).all()


def test_a_diameter_for_a_model_that_is_not_scale_aware_is_a_one_line_error(
    inputs: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    assert predict(str(inputs), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--diameter", "30") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not scale-aware" in err[0] and "Traceback" not in err[0]


# --------------------------------------------------------------------------- interrupted and resumed runs


def _tables(out: Path) -> tuple[bytes, bytes]:
    return (out / "summary.csv").read_bytes(), (out / "nuclei.csv").read_bytes()


@pytest.fixture
def clean(inputs: Path, tiny_model: Path, tmp_path: Path) -> Path:
    """The output folder of one uninterrupted run over ``inputs``."""
    folder = tmp_path / "clean"
    assert predict(str(inputs), "-o", str(folder), "--model", str(tiny_model)) == 0
    return folder


def test_an_interrupted_run_resumes_with_the_same_command(
    inputs: Path, tiny_model: Path, tmp_path: Path, clean: Path, monkeypatch, capsys
) -> None:
    import pandas as pd

    from nucleilib.segmenter import Segmenter

    out = tmp_path / "out"
    real = Segmenter.segment_instances
    calls = []

    def interrupted_at_the_third(self, image, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, image, **kwargs)

    monkeypatch.setattr(Segmenter, "segment_instances", interrupted_at_the_third)
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model)) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err == "nuclei: error: interrupted: 2 of 4 image(s) done; run the same command again to finish"
    assert len(pd.read_csv(out / "summary.csv")) == 2  # the tables hold what is finished
    monkeypatch.setattr(Segmenter, "segment_instances", real)
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model)) == 0
    assert "resuming: 2 of 4 image(s) already done" in capsys.readouterr().out
    assert _tables(out) == _tables(clean)
    for stem in ("rgb", "rgba", "grey", "deep"):
        assert (out / f"{stem}_labels.png").read_bytes() == (clean / f"{stem}_labels.png").read_bytes()
    assert not list(out.glob(".*.partial*"))


def test_a_finished_run_started_again_does_nothing_and_keeps_its_tables(
    inputs: Path, tiny_model: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from nucleilib.segmenter import Segmenter

    out = tmp_path / "out"
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model), "--overlay") == 0
    before = tree_digest(out)
    monkeypatch.setattr(Segmenter, "segment_instances", lambda *a, **k: pytest.fail("nothing left to segment"))
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model), "--overlay") == 0
    assert "resuming: 4 of 4" in capsys.readouterr().out
    assert tree_digest(out) == before


def test_an_image_whose_outputs_were_not_all_written_is_segmented_again(
    inputs: Path, tiny_model: Path, tmp_path: Path, clean: Path, monkeypatch, capsys
) -> None:
    # A process killed after the label image was written but before the image was recorded as
    # done, and a disk that filled up while writing: neither leaves an image counted as done.
    from nucleilib import batch

    out = tmp_path / "out"
    real_finish = batch.PredictionRun.finish

    def killed_before_recording(self, name, summary, nuclei):
        if name == "grey":
            raise KeyboardInterrupt
        real_finish(self, name, summary, nuclei)

    monkeypatch.setattr(batch.PredictionRun, "finish", killed_before_recording)
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model)) == 130
    assert (out / "grey_labels.png").is_file()
    monkeypatch.setattr(batch.PredictionRun, "finish", real_finish)

    import PIL.Image

    real_save = PIL.Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        if "rgba_labels" in str(fp):  # an image after the one killed (inputs go in name order)
            raise OSError(28, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image.Image, "save", disk_full)
    capsys.readouterr()
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model)) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "rgba" in err and "Traceback" not in err
    assert not (out / "rgba_labels.png").exists() and not list(out.glob(".*.partial*"))
    monkeypatch.setattr(PIL.Image.Image, "save", real_save)
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model)) == 0
    assert _tables(out) == _tables(clean)


def test_results_of_other_settings_are_never_written_over_without_overwrite(
    inputs: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model)) == 0
    before = tree_digest(out)
    capsys.readouterr()
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model), "--tta", "4") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ".nuclei-run.json" in err
    assert "other settings" in err and "tta 1 then, 4 now" in err and "--overwrite" in err
    assert tree_digest(out) == before
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model), "--tta", "4", "--overwrite") == 0
    assert "resuming" not in capsys.readouterr().out


def test_two_worker_processes_write_what_one_process_writes(inputs: Path, tiny_model: Path, tmp_path: Path) -> None:
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert predict(str(inputs), "-o", str(serial), "--model", str(tiny_model), "--overlay") == 0
    assert predict(str(inputs), "-o", str(parallel), "--model", str(tiny_model), "--overlay", "--workers", "2") == 0
    assert _tables(parallel) == _tables(serial)  # in input order, whatever order the workers finish in
    for path in serial.glob("*.png"):
        assert (parallel / path.name).read_bytes() == path.read_bytes(), path.name


def test_workers_below_one_is_a_one_line_error(inputs: Path, tiny_model: Path, tmp_path: Path, capsys) -> None:
    assert predict(str(inputs), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--workers", "0") == 2
    assert capsys.readouterr().err.strip() == "nuclei: error: --workers must be at least 1, got 0"


def test_threads_leave_the_outputs_as_they_are(inputs: Path, tiny_model: Path, tmp_path: Path, clean: Path) -> None:
    out = tmp_path / "one-thread"
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model), "--threads", "1") == 0
    assert _tables(out) == _tables(clean)


def test_threads_below_one_is_a_one_line_error(inputs: Path, tiny_model: Path, tmp_path: Path, capsys) -> None:
    assert predict(str(inputs), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--threads", "0") == 2
    assert capsys.readouterr().err.strip() == "nuclei: error: --threads must be at least 1, got 0"


def test_the_pipeline_reads_only_a_few_images_ahead_of_the_network(
    tmp_path: Path, tiny_model: Path, monkeypatch
) -> None:
    """Reading, segmenting and writing overlap, but the images held between them stay bounded."""
    from nucleilib import batch
    from nucleilib.segmenter import Segmenter

    folder = tmp_path / "many"
    folder.mkdir()
    for k in range(12):
        Image.fromarray(disc_image()).save(folder / f"img{k:02d}.png")
    loads, segmented, ahead = [], [], []
    real_load, real_segment = batch._load, Segmenter.segment_instances

    def counted_load(path, block):
        loads.append(path)
        ahead.append(len(loads) - len(segmented))
        return real_load(path, block)

    def counted_segment(self, image, **kwargs):
        segmented.append(1)
        return real_segment(self, image, **kwargs)

    monkeypatch.setattr(batch, "_load", counted_load)
    monkeypatch.setattr(Segmenter, "segment_instances", counted_segment)
    out = tmp_path / "out"
    assert predict(str(folder), "-o", str(out), "--model", str(tiny_model)) == 0
    assert len(loads) == len(segmented) == 12
    assert max(ahead) <= batch.PIPELINE_DEPTH + 2, ahead
    assert len(list(out.glob("*_labels.png"))) == 12


def test_an_image_larger_than_the_block_is_segmented_block_by_block_into_a_tiff(
    tiny_model: Path, tmp_path: Path
) -> None:
    import pandas as pd
    import tifffile

    folder = tmp_path / "slides"
    folder.mkdir()
    tifffile.imwrite(folder / "region.tif", disc_image((300, 420), channels=1))  # uncompressed: read lazily
    Image.fromarray(disc_image()).save(folder / "small.png")
    out = tmp_path / "out"
    assert predict(str(folder), "-o", str(out), "--model", str(tiny_model), "--block", "128") == 0
    labels = tifffile.imread(out / "region_labels.tif")
    assert labels.shape == (300, 420) and labels.dtype == np.uint32
    summary = pd.read_csv(out / "summary.csv").set_index("output")
    assert summary.loc["region_labels.tif", "nuclei"] == int(labels.max()) == len(np.unique(labels)) - 1
    assert "small_labels.png" in summary.index  # a small image in the same run is segmented whole
    nuclei = pd.read_csv(out / "nuclei.csv")
    assert (nuclei["image"].str.endswith("region.tif")).sum() == labels.max()
    assert not list(out.glob(".*.partial*"))


def test_a_block_that_is_not_a_multiple_of_16_is_a_one_line_error(
    inputs: Path, tiny_model: Path, tmp_path: Path, capsys
) -> None:
    assert predict(str(inputs), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--block", "100") == 2
    assert capsys.readouterr().err.strip() == "nuclei: error: --block must be 0 or a positive multiple of 16, got 100"


def test_the_default_backend_is_the_faster_tflite_model_on_this_cpu_else_keras(
    inputs: Path, tiny_model: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    from nucleilib import backends, batch
    from nucleilib.models import model_folder

    assert backends.default_backend("unet-dsb2018", cpu_flags=["avx2", "avx512f", "avx512_vnni"]) == "tflite-int8"
    assert backends.default_backend("unet-dsb2018", cpu_flags=["avx2", "avx_vnni"]) == "tflite-int8"
    assert backends.default_backend("unet-dsb2018", cpu_flags=["avx2", "fma"]) == "tflite-float16"
    assert backends.default_backend("unet-dsb2018") in ("tflite-int8", "tflite-float16")
    # Only the file that is there can be chosen.
    only_int8 = tmp_path / "only-int8"
    shutil.copytree(model_folder("unet-dsb2018"), only_int8)
    (only_int8 / backends.tflite_filename("float16")).unlink()
    assert backends.default_backend(only_int8, cpu_flags=["avx2"]) == "tflite-int8"
    assert backends.default_backend(tiny_model) == "keras"  # no TensorFlow Lite file beside its weights
    out = tmp_path / "out"
    assert predict(str(inputs), "-o", str(out), "--model", str(tiny_model)) == 0
    assert json.loads((out / batch.RUN_RECORD).read_text())["settings"]["backend"] == "keras"
