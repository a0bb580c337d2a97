"""The package's metadata says what the code and its tests need: every imported package declared, floors without
caps, and the wheel holds what its classifiers promise."""

from __future__ import annotations

import ast
import email
import functools
import re
import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from importlib.metadata import distribution, distributions
from pathlib import Path

import pytest

from mellm_core.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"mellm_core", "mellm_plugins", "mellm_recipes"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


OPTIONAL = ("mlflow", "wandb", "hf")  # extras holding what one optional feature imports


@pytest.fixture(scope="module")
def metadata(tmp_path_factory) -> tuple[Message, set[str]]:
    """(METADATA, file names) of the wheel built from a copy of the sources, as pip would build it: what the
    package says now, not what an earlier editable install recorded."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for name in ("mellm_core", "plugins", "recipes"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = f"from setuptools import build_meta; print(build_meta.build_wheel({str(out)!r}))"
    done = subprocess.run([sys.executable, "-c", build], cwd=src, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with zipfile.ZipFile(out / done.stdout.strip().splitlines()[-1]) as wheel:
        names = set(wheel.namelist())
        meta = email.message_from_bytes(wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))))
    return meta, names


def requirements(lines: list[str], extras: tuple[str, ...] = ()) -> dict[str, str]:
    """{distribution name: its specifier} of the ``Requires-Dist`` ``lines`` that hold for ``extras``."""
    out = {}
    for line in lines:
        extra = re.search(r"extra == ['\"]([^'\"]+)['\"]", line)
        if extra and extra.group(1) not in extras:
            continue
        name = re.match(r"[A-Za-z0-9_.-]+", line).group(0)
        out[normalise(name)] = line[len(name):].split(";")[0].strip()
    return out


@functools.cache  # reading every installed distribution's file list takes a while
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


def imported_modules(*folders: str) -> set[str]:
    """Top-level modules that the Python files under ``folders`` import (stdlib, first-party and those folders' own
    modules left out)."""
    found, own = set(), set()
    for path in [p for folder in folders for p in (ROOT / folder).rglob("*.py")]:
        own.add(path.stem)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - FIRST_PARTY - own - set(sys.stdlib_module_names)


def test_every_package_the_code_imports_is_declared(metadata):
    declared, installed_by = requirements(metadata[0].get_all("Requires-Dist"), OPTIONAL), owners()
    modules = imported_modules("mellm_core", "plugins")
    assert {"cv2", "torch", "yaml", "dlib", "PIL"} <= modules  # the scan sees imports inside functions too
    undeclared = {m: installed_by.get(m) for m in modules if not installed_by.get(m, set()) & set(declared)}
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"


def test_every_package_the_tests_import_is_in_the_dev_extra(metadata):
    """`pip install -e ".[dev]"` (.ci/run) installs what the tests import, not only what other packages happen to
    pull in (psutil, scipy and boto3 came that way)."""
    declared, installed_by = requirements(metadata[0].get_all("Requires-Dist"), ("dev", *OPTIONAL)), owners()
    modules = imported_modules("tests")
    assert {"psutil", "scipy", "boto3", "pytest"} <= modules and "helpers" not in modules
    undeclared = {m: installed_by.get(m) for m in modules if not installed_by.get(m, set()) & set(declared)}
    assert not undeclared, f"the tests import these, which the dev extra does not declare: {undeclared}"


def test_the_wheel_holds_what_its_metadata_promises(metadata):
    """The "Typing :: Typed" classifier comes with the PEP 561 marker; no project URL is a placeholder."""
    meta, names = metadata
    assert "Typing :: Typed" in meta.get_all("Classifier") and "mellm_core/py.typed" in names
    assert {"mellm_recipes/quickstart.yaml", "mellm_core/serving/web/index.html"} <= names
    assert not [url for url in meta.get_all("Project-URL") or [] if "OWNER" in url or "example" in url]


def test_dependencies_have_floors_and_no_caps(metadata):
    declared = requirements(metadata[0].get_all("Requires-Dist"), OPTIONAL)
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
