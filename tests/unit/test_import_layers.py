"""Every package and top-level module of ``autotrader`` sits in a layer of the import-linter contract.

The layers contract only checks what it lists: a package left out could import anything. This test
fails when a new package (or a top-level module other than the entry points) is added without a layer.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import autotrader

ENTRY_POINTS = {"__init__", "__main__"}


def _layered_names() -> set[str]:
    config = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    names = set()
    for layer in layers:
        for part in layer.replace("|", ":").split(":"):
            names.add(part.strip().removeprefix("autotrader."))
    return names


def _top_level_names() -> set[str]:
    root = Path(autotrader.__file__).parent
    packages = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in root.glob("*.py")} - ENTRY_POINTS
    return packages | modules


def test_every_package_and_module_is_in_a_layer() -> None:
    missing = _top_level_names() - _layered_names()
    assert not missing, f"add to the layers contract in pyproject.toml: {sorted(missing)}"


def test_the_layers_name_nothing_that_does_not_exist() -> None:
    assert _layered_names() <= _top_level_names()
