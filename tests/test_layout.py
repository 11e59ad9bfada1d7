"""The package's two layers: the tool (the top of nucleilib) never imports the study
(nucleilib.study), the shipped models live in a data folder, and no folder shadows a module.

The import check reads the source (ast), so it sees imports inside functions, relative
imports and ``importlib.import_module`` calls with a literal name, not only those that
run at import time.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "nucleilib"
STUDY = "nucleilib.study"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    if level == 0:
        return target or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def imported_names(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, wherever it is written.

    ``from a import b`` yields both ``a`` and ``a.b`` (``b`` may be a sub-module);
    ``importlib.import_module("x")`` and ``__import__("x")`` with a literal name yield ``x``.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def study_imports(path: Path) -> list[str]:
    module = module_name(path)
    names = imported_names(path.read_text(), module, is_package=path.name == "__init__.py")
    return [
        f"{path.relative_to(REPO_ROOT)}:{line}: imports {name}"
        for line, name in names
        if name == STUDY or name.startswith(STUDY + ".")
    ]


def tool_modules() -> list[Path]:
    study = PACKAGE / "study"
    return sorted(p for p in PACKAGE.rglob("*.py") if study not in p.parents)


def test_there_are_tool_modules_to_check() -> None:
    names = {p.name for p in tool_modules()}
    assert {"__init__.py", "cli.py", "segmenter.py", "io.py", "backends.py"} <= names


@pytest.mark.parametrize("path", tool_modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_the_tool_never_imports_the_study(path: Path) -> None:
    assert study_imports(path) == []


@pytest.mark.parametrize(
    ("source", "module", "is_package"),
    [
        ("import nucleilib.study.runner\n", "nucleilib.cli", False),
        ("from nucleilib.study import runner\n", "nucleilib.cli", False),
        ("from nucleilib import study\n", "nucleilib.cli", False),
        ("from .study import runner\n", "nucleilib.cli", False),
        ("from . import study\n", "nucleilib.cli", False),
        ("from .study.benchmarks import time_inference\n", "nucleilib.cli", False),
        ("from . import study\n", "nucleilib", True),
        ("from .. import study\n", "nucleilib.sub.mod", False),
        ("def f():\n    if True:\n        from .study import cli\n", "nucleilib.cli", False),
        ("class A:\n    def f(self):\n        import nucleilib.study\n", "nucleilib.cli", False),
        ("import importlib\nimportlib.import_module('nucleilib.study.cli')\n", "nucleilib.cli", False),
    ],
)
def test_the_import_check_sees_every_spelling(source: str, module: str, is_package: bool) -> None:
    names = [name for _, name in imported_names(source, module, is_package=is_package)]
    assert any(n == STUDY or n.startswith(STUDY + ".") for n in names), names


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from .studying import x\n", "nucleilib.cli"),
        ("import nucleilib.studyguide\n", "nucleilib.cli"),
        ("from .io import study\n", "nucleilib.cli"),  # a name, not the sub-package
        ("from ..errors import NucleiError\n", "nucleilib.study.runner"),
    ],
)
def test_the_import_check_does_not_flag_neighbours(source: str, module: str) -> None:
    names = [name for _, name in imported_names(source, module)]
    assert not any(n == STUDY or n.startswith(STUDY + ".") for n in names), names


def test_importing_the_tool_loads_no_study_module() -> None:
    import subprocess

    code = (
        "import sys, nucleilib, nucleilib.cli, nucleilib.segmenter, nucleilib.backends, nucleilib.export, "
        "nucleilib.training, nucleilib.pipeline, nucleilib.plotting; "
        "print(sorted(m for m in sys.modules if m.startswith('nucleilib.study')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- folders


def test_the_shipped_models_live_in_the_pretrained_data_folder() -> None:
    from nucleilib import models

    pretrained = PACKAGE / "pretrained"
    assert pretrained.is_dir() and models.PRETRAINED_DIR == pretrained.resolve()
    assert not (pretrained / "__init__.py").exists(), "a data folder, not a package"
    shipped = [p for p in pretrained.iterdir() if p.is_dir()]
    assert shipped, "no shipped model"
    for folder in shipped:
        assert (folder / "config.json").is_file() and (folder / "weights.npz").is_file(), folder


def test_the_pretrained_folder_is_package_data() -> None:
    import tomllib

    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    data = config["tool"]["setuptools"]["package-data"]["nucleilib"]
    assert "pretrained/*/*" in data


def test_no_folder_shares_a_name_with_a_module() -> None:
    clashes = []
    for folder in [PACKAGE, *sorted(p for p in PACKAGE.rglob("*") if p.is_dir())]:
        if folder.name == "__pycache__" or "__pycache__" in folder.parts:
            continue
        for child in folder.iterdir():
            if child.is_dir() and child.name != "__pycache__" and (folder / f"{child.name}.py").is_file():
                kind = f"a link to {child.readlink()}" if child.is_symlink() else "a folder"
                clashes.append(f"{child.relative_to(REPO_ROOT)} ({kind}) beside {child.name}.py")
    assert clashes == []
