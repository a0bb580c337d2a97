"""The package's metadata says what the code needs: every imported package declared, floors without caps."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import distribution, distributions
from pathlib import Path

from mellm_core.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"mellm_core", "mellm_plugins", "mellm_recipes"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


OPTIONAL = ("mlflow", "wandb", "hf")  # extras holding what one optional feature imports


def requirements(extras: tuple[str, ...] = ()) -> dict[str, str]:
    """{distribution name: its specifier} of mellm's own dependencies and those of ``extras``."""
    out = {}
    for line in distribution("mellm").requires or []:
        extra = re.search(r"extra == ['\"]([^'\"]+)['\"]", line)
        if extra and extra.group(1) not in extras:
            continue
        name = re.match(r"[A-Za-z0-9_.-]+", line).group(0)
        out[normalise(name)] = line[len(name):].split(";")[0].strip()
    return out


def owners() -> dict[str, set[str]]:
    """{top-level module: distributions that install it}, read from each distribution's files (some wheels' own
    top_level.txt leaves out the module users import, as dlib-bin's does)."""
    out: dict[str, set[str]] = {}
    for dist in distributions():
        for file in dist.files or []:
            top = file.parts[0].split(".")[0]
            if len(file.parts) > 1 and file.parts[0].endswith((".dist-info", ".data")):
                continue
            out.setdefault(top, set()).add(normalise(dist.metadata["Name"]))
    return out


def imported_modules() -> set[str]:
    """Top-level modules that mellm_core and the built-in plugins import (stdlib and first-party left out)."""
    found = set()
    for path in [*(ROOT / "mellm_core").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - FIRST_PARTY - set(sys.stdlib_module_names)


def test_every_package_the_code_imports_is_declared():
    declared, installed_by = requirements(OPTIONAL), owners()
    modules = imported_modules()
    assert {"cv2", "torch", "yaml", "dlib", "PIL"} <= modules  # the scan sees imports inside functions too
    undeclared = {m: installed_by.get(m) for m in modules if not installed_by.get(m, set()) & set(declared)}
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"


def test_dependencies_have_floors_and_no_caps():
    declared = requirements(OPTIONAL)
    assert {"torch", "transformers", "pyyaml", "scikit-image", "matplotlib"} <= set(declared)
    for name, spec in declared.items():
        assert ">=" in spec, f"{name} has no lower bound"
        assert not re.search(r"<|~=|==", spec), f"{name} is capped or pinned: {spec}"
    constraints = (ROOT / ".ci" / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", constraints, re.M), "CI pins the CPU torch it tests"


def test_metadata_names_the_licence_and_the_version_command_prints_it(capsys):
    meta = distribution("mellm").metadata
    assert meta["License-Expression"] == "Apache-2.0"
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert any("Topic :: Scientific/Engineering" in c for c in meta.get_all("Classifier"))
    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert capsys.readouterr().out.strip() == f"mellm {meta['Version']}"
