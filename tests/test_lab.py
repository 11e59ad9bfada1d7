"""``make lab`` gives JupyterLab's kernels the study's environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nucleilib.study import lab


@pytest.fixture
def environment_with_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in environment whose bin folder holds python, jupyter and jupyter-lab."""
    for name in ("python", "jupyter", "jupyter-lab"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setattr(lab.sys, "executable", str(tmp_path / "python"))
    return tmp_path


def test_lab_sets_the_study_environment_and_hands_over_to_jupyter_lab(
    environment_with_lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # restored afterwards, as every variable main sets
    calls = []
    monkeypatch.setattr(lab.os, "execv", lambda path, argv: calls.append((path, argv, dict(os.environ))))
    lab.main(["--no-browser", "notebooks/"])
    ((path, argv, environment),) = calls
    assert path == str(environment_with_lab / "jupyter")
    assert argv == [path, "lab", "--no-browser", "notebooks/"]
    assert environment["TF_ENABLE_ONEDNN_OPTS"] == "1"


def test_lab_keeps_a_value_the_user_set(environment_with_lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    calls = []
    monkeypatch.setattr(lab.os, "execv", lambda path, argv: calls.append(dict(os.environ)))
    lab.main([])
    assert calls[0]["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_lab_without_jupyterlab_says_how_to_install_it(
    environment_with_lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (environment_with_lab / "jupyter-lab").unlink()  # jupyter alone comes with the kernel, not Lab
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setattr(lab.os, "execv", lambda path, argv: pytest.fail("started without JupyterLab"))
    with pytest.raises(SystemExit, match=f"no JupyterLab in {environment_with_lab}: install the lab extra"):
        lab.main([])
