"""CI's helpers: the README's Quickstart commands, and the lock against pyproject.toml."""

from __future__ import annotations

import importlib.util
import tomllib
from types import ModuleType

import pytest

from tests.conftest import ROOT


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / ".ci" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


readme = _load("readme_commands")
lock = _load("check_lock")


def test_the_quickstart_commands_install_from_the_lock() -> None:
    tune, tests = readme.quickstart_commands((ROOT / "README.md").read_text())
    assert tune.startswith("pip install -c constraints.txt -e . && autotune tune ")
    assert tests.startswith("pip install -c constraints.txt -e '.[dev]' && ruff check .")
    assert tests.endswith("&& mypy && lint-imports && pytest")


def test_a_readme_without_the_two_commands_is_refused() -> None:
    text = "# x\n\n## Quickstart\n\n```sh\npytest\n```\n\n## Next\n"
    with pytest.raises(SystemExit, match="two sh blocks"):
        readme.quickstart_commands(text)
    with pytest.raises(SystemExit, match="no '## Quickstart' section"):
        readme.quickstart_commands("# x\n")


def test_the_committed_lock_agrees_with_pyproject() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert lock.agreement(project, lock._lock()) == []


def test_disagreements_are_named() -> None:
    project = {
        "dependencies": ["numpy>=2.5", "tabulate>=0.9"],
        "optional-dependencies": {"dev": ["ruff>=0.17", "optuna>=3.6"], "bench": ["optuna>=3.6"]},
    }
    pins = {"numpy": "2.4.6", "ruff": "0.17.6", "optuna": "5.0.0"}
    assert lock.agreement(project, pins) == [
        "constraints.txt pins numpy==2.4.6, outside [project.dependencies]'s 'numpy>=2.5'",
        "constraints.txt has no pin for tabulate ([project.dependencies]: 'tabulate>=0.9')",
        "pyproject.toml: dev tool 'ruff>=0.17' must be pinned exactly (==)",
    ]


def test_drift_either_way_is_named() -> None:
    pins = {"numpy": "2.4.6", "gone": "1.0"}
    installed = {"numpy": "2.4.7", "extra": "0.1", "pip": "23.2.1", "autotune": "0.1.0"}
    assert lock.drift(installed, pins) == [
        "extra==0.1 is installed but constraints.txt does not pin it",
        "numpy==2.4.7 is installed but constraints.txt pins 2.4.6",
        "constraints.txt pins gone==1.0, which nothing installs (stale)",
    ]


def test_lowest_pins_each_runtime_dependency_at_its_lower_bound() -> None:
    pins = lock.lowest()
    with open(ROOT / "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    assert len(pins) == len(dependencies) + len(lock.TEST_TOOLS)
    assert "numpy==1.26" in pins and "scikit-optimize==0.10.2" in pins
    assert all("==" in pin for pin in pins)


def test_every_package_has_a_place_in_the_import_layers() -> None:
    """A new package outside the layers would escape the import contract unnoticed."""
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as f:
        contracts = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    packages = {
        f"autotune.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "autotune").iterdir()
        if (p.is_dir() and (p / "__init__.py").exists())
        or (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
    }
    assert packages == placed
    assert {c["type"] for c in contracts} == {"layers", "private_modules"}


def test_no_module_is_over_500_lines() -> None:
    """A module past 500 lines does several jobs: split it by job."""
    long = {
        str(p.relative_to(ROOT)): n
        for p in sorted((ROOT / "autotune").rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert long == {}
