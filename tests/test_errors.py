"""nucleilib.errors: one base class for every error the project raises on purpose."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import nucleilib
from nucleilib import errors
from nucleilib.errors import BackendUnavailableError, DatasetError, ModelNotFoundError, NucleiError


def project_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined in a nucleilib module, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(nucleilib.__path__, "nucleilib."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_project_error_is_a_nuclei_error() -> None:
    found = project_exceptions()
    # The known ones, so that a broken discovery cannot pass by finding nothing.
    assert {
        "nucleilib.errors.DatasetError",
        "nucleilib.study.runner.StudyError",
        "nucleilib.study.book.sitecheck.SiteCheckError",
    } <= set(found)
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, NucleiError))
    assert outside == []


def test_the_errors_keep_their_builtin_bases() -> None:
    # Callers that catch ValueError or FileNotFoundError keep working.
    assert issubclass(DatasetError, ValueError)
    assert issubclass(ModelNotFoundError, FileNotFoundError) and issubclass(ModelNotFoundError, ValueError)
    assert issubclass(BackendUnavailableError, ModelNotFoundError)
    assert set(errors.__dict__) >= {"NucleiError", "DatasetError", "ModelNotFoundError", "BackendUnavailableError"}


@pytest.mark.parametrize("cls", [DatasetError, ModelNotFoundError, BackendUnavailableError])
def test_a_nuclei_error_keeps_its_message(cls: type[NucleiError]) -> None:
    with pytest.raises(NucleiError) as caught:
        raise cls("x.png: cannot decode image")
    assert str(caught.value) == "x.png: cannot decode image"
