"""``make lab`` gives JupyterLab's kernels the study's environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nucleilib.study import lab


def test_lab_sets_the_study_environment_and_hands_over_to_jupyter_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # restored afterwards, as every variable main sets
    calls = []
    monkeypatch.setattr(lab.os, "execv", lambda path, argv: calls.append((path, argv, dict(os.environ))))
    lab.main(["--no-browser", "notebooks/"])
    ((path, argv, environment),) = calls
    assert Path(path).name == "jupyter" and argv == [path, "lab", "--no-browser", "notebooks/"]
    assert environment["TF_ENABLE_ONEDNN_OPTS"] == "1"


def test_lab_keeps_a_value_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    calls = []
    monkeypatch.setattr(lab.os, "execv", lambda path, argv: calls.append(dict(os.environ)))
    lab.main([])
    assert calls[0]["TF_ENABLE_ONEDNN_OPTS"] == "0"
