"""Compute profiles: one set of notebook parameters per hardware budget.

``smoke`` is for CI (minutes, a small subset), ``cpu`` is the default run on a
laptop (2 cores), ``gpu`` is the seed paper's full setting. The same notebooks run
under all three; only these parameters differ.
"""

from __future__ import annotations

from typing import Any

PROFILES = ("smoke", "cpu", "gpu")
DEFAULT_PROFILE = "cpu"
#: Where a chapter run outside the published study writes: JupyterLab (the parameters cells'
#: default), papermill by hand and ``nuclei study -p`` (one-off parameters).
SCRATCH = "artefacts/lab"

#: The study's notebooks, in the order they run (file stems under ``notebooks/``).
NOTEBOOKS = ("01_eda", "02_unet", "03_comparison", "04_gradcam", "05_lrp", "06_speed", "07_unseen", "08_audit")

_COMMON: dict[str, dict[str, Any]] = {
    "smoke": {"seed": 42, "max_images": 48},
    "cpu": {"seed": 42, "max_images": None},
    "gpu": {"seed": 42, "max_images": None},
}

_PER_NOTEBOOK: dict[str, dict[str, dict[str, Any]]] = {
    "01_eda": {
        "smoke": {"measure_load_time": False},
        "cpu": {"measure_load_time": True},
        "gpu": {"measure_load_time": True},
    },
    # cpu: about 27 min for the main training on 2 cores plus 2 x 6 min of ablation.
    "02_unet": {
        "smoke": {
            "crop": 64,
            "batch_size": 4,
            "epochs": 2,
            "steps_per_epoch": 5,
            "patience": 2,
            "max_minutes": 2.0,
            "ablation_minutes": 0.5,
            "ablation_steps": 3,
            "ship_model": False,
            "ship_diameter": 24.0,
            "ship_colour_input": "hematoxylin",
        },
        "cpu": {
            "crop": 128,
            "batch_size": 8,
            "epochs": 60,
            "steps_per_epoch": 100,
            "patience": 12,
            "max_minutes": 27.0,
            "ablation_minutes": 6.0,
            "ablation_steps": 60,
            "ship_model": True,
            # the best reference diameter of the grouped sweep in 07_unseen (which checks it)
            "ship_diameter": 24.0,
            "ship_colour_input": "hematoxylin",
        },
        "gpu": {
            "crop": 256,
            "batch_size": 16,
            "epochs": 100,
            "steps_per_epoch": 200,
            "patience": 15,
            "max_minutes": 150.0,
            "ablation_minutes": 20.0,
            "ablation_steps": 100,
            "ship_model": True,
            "ship_diameter": 24.0,
            "ship_colour_input": "hematoxylin",
        },
    },
    # cpu: seven trainings of 1,200 steps each (about 50 min on 2 cores), cached.
    "03_comparison": {
        "smoke": {
            "crop": 64,
            "batch_size": 4,
            "epochs": 2,
            "steps_per_epoch": 3,
            "patience": 2,
            "max_minutes": 2.0,
            "extra_seeds": [1],
            "test_limit": 6,
            "timing_repeats": 2,
        },
        "cpu": {
            "crop": 128,
            "batch_size": 8,
            "epochs": 20,
            "steps_per_epoch": 60,
            "patience": 12,
            "max_minutes": 20.0,
            "extra_seeds": [1, 2],
            "test_limit": None,
            "timing_repeats": 10,
        },
        "gpu": {
            "crop": 256,
            "batch_size": 16,
            "epochs": 50,
            "steps_per_epoch": 200,
            "patience": 15,
            "max_minutes": 60.0,
            "extra_seeds": [1, 2],
            "test_limit": None,
            "timing_repeats": 20,
        },
    },
    # cpu: about 3 min (Grad-CAM) and 7 min (LRP, four rules) on 2 cores.
    "04_gradcam": {
        "smoke": {"n_images_per_modality": 1, "image_size": 64, "per_nucleus": True, "cascade": False},
        "cpu": {"n_images_per_modality": 3, "image_size": 256, "per_nucleus": True, "cascade": True},
        "gpu": {"n_images_per_modality": 10, "image_size": 256, "per_nucleus": True, "cascade": True},
    },
    "05_lrp": {
        "smoke": {
            "max_images": 1,
            "n_images_per_modality": 1,
            "image_size": 64,
            "rules": ["lrp.epsilon"],
            "sanity_rules": ["lrp.epsilon"],
            "cascade_stops": [],
        },
        "cpu": {
            "n_images_per_modality": 2,
            "image_size": 256,
            "rules": ["lrp.epsilon", "lrp.z", "lrp.alpha_1_beta_0", "lrp.sequential_preset_a"],
            "sanity_rules": ["lrp.epsilon"],
            "cascade_stops": ["logits", "dec2", "bottleneck"],
        },
        "gpu": {
            "n_images_per_modality": 5,
            "image_size": 256,
            "rules": ["lrp.epsilon", "lrp.z", "lrp.alpha_1_beta_0", "lrp.sequential_preset_a"],
            "sanity_rules": ["lrp.epsilon", "lrp.z"],
            "cascade_stops": ["logits", "dec1", "dec2", "dec4", "bottleneck", "enc3"],
        },
    },
    "06_speed": {
        "smoke": {
            "sizes": [64, 128],
            "batches": [1, 4],
            "max_batch_pixels": 65536,
            "repeats": 2,
            "warmup": 1,
            "test_limit": 3,
            "train_images": 6,
            "calibration_crops": 4,
            "calibration_size": 64,
            "train_crop": 64,
            "train_batch_size": 4,
            "train_steps": 2,
            "train_warmup": 1,
            "ship_quantised": False,
            "e2e_images": 6,
            "e2e_small": 2,
            "e2e_backends": ["keras"],
            "e2e_busy_backend": "keras",
        },
        "cpu": {
            "sizes": [256, 512, 1024],
            "batches": [1, 4, 16],
            "max_batch_pixels": 16 * 256 * 256,
            "repeats": 3,
            "warmup": 1,
            "test_limit": None,
            "train_images": 48,
            "calibration_crops": 32,
            "calibration_size": 256,
            "train_crop": 128,
            "train_batch_size": 8,
            "train_steps": 8,
            "train_warmup": 2,
            "ship_quantised": True,
        },
        "gpu": {
            "sizes": [256, 512, 1024],
            "batches": [1, 4, 16],
            "max_batch_pixels": 4 * 1024 * 1024,
            "repeats": 10,
            "warmup": 2,
            "test_limit": None,
            "train_images": 64,
            "calibration_crops": 64,
            "calibration_size": 256,
            "train_crop": 256,
            "train_batch_size": 16,
            "train_steps": 30,
            "train_warmup": 3,
            "ship_quantised": True,
        },
    },
    # cpu: three grouped-fold trainings of the comparison budget per lever (the baseline and five
    # training levers, about 20 min each on 2 cores, cached), scored plain, rescaled at inference and
    # with test-time augmentation (about 5 min per scoring pass over the 664 images).
    "07_unseen": {
        "smoke": {
            "folds": 2,
            "crop": 64,
            "batch_size": 4,
            "epochs": 2,
            "steps_per_epoch": 3,
            "patience": 2,
            "max_minutes": 2.0,
            "tta_views": 4,
            "methods": ["borders"],
            "levers": ["scale+modality"],
            "inference_runs": [
                ["baseline", "rescaled at inference, 20 px"],
                ["baseline", "rescaled at inference, 24 px"],
                ["baseline", "rescaled at inference, 24 px, hematoxylin input"],
            ],
            "stardist_folds": [0],
        },
        "cpu": {
            "folds": 3,
            "crop": 128,
            "batch_size": 8,
            "epochs": 20,
            "steps_per_epoch": 60,
            "patience": 12,
            "max_minutes": 20.0,
            "levers": ["modality", "scale", "scale+modality", "separation", "bfloat16"],
            # the baseline's networks rescaled to four reference diameters, then at 24 px with
            # colour images as grey or haematoxylin; two levers at 20 px, bfloat16 at 24 px
            "inference_runs": [
                ["baseline", "rescaled at inference, 16 px"],
                ["baseline", "rescaled at inference, 20 px"],
                ["baseline", "rescaled at inference, 24 px"],
                ["baseline", "rescaled at inference, 28 px"],
                ["baseline", "rescaled at inference, 24 px, grey input"],
                ["baseline", "rescaled at inference, 24 px, hematoxylin input"],
                ["modality", "rescaled at inference, 20 px"],
                ["separation", "rescaled at inference, 20 px"],
                ["bfloat16", "rescaled at inference, 24 px"],
            ],
        },
        "gpu": {
            "folds": 0,
            "crop": 256,
            "batch_size": 16,
            "epochs": 50,
            "steps_per_epoch": 200,
            "patience": 15,
            "max_minutes": 60.0,
        },
    },
}


def check_profile(profile: str) -> str:
    """Return ``profile`` if it is known, else raise a ValueError listing the choices."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile


def notebook_parameters(notebook: str, profile: str) -> dict[str, Any]:
    """Papermill parameters of one notebook under one profile.

    Every notebook receives ``profile``, ``artefacts`` (its profile's artefact
    folder, relative to the project root) and the profile's common settings.

    Examples
    --------
    >>> notebook_parameters("01_eda", "smoke")["max_images"]
    48
    """
    check_profile(profile)
    if notebook not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {notebook!r}; the study has {', '.join(NOTEBOOKS)}")
    params: dict[str, Any] = {"profile": profile, "artefacts": f"artefacts/{profile}"}
    params.update(_COMMON[profile])
    params.update(_PER_NOTEBOOK.get(notebook, {}).get(profile, {}))
    return params
