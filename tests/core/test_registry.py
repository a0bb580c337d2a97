"""The plugin registry: lookups, params, duplicates, disabling, inline and entry-point plugins in real pipelines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from mellm_core import PluginSpec, hookimpl
from mellm_core.config import MapsConfig
from mellm_core.errors import PluginError
from mellm_core.motion.mapper import Mapper
from mellm_core.plugins import Registry, describe_params, get_registry


def test_builtins_are_registered_through_entry_points():
    registry = Registry()
    assert registry.names("flow") == ["dis", "farneback", "tvl1"]
    assert set(registry.names("landmarker")) >= {"dlib68", "none"}
    assert set(registry.names("colorizer")) >= {"mmc", "wheel"}
    entry = registry.get("flow", "tvl1")
    assert entry.module == "mellm_plugins.flow.tvl1" and entry.distribution == "mellm"
    assert registry.load_errors == []


def test_unknown_name_lists_the_choices():
    with pytest.raises(PluginError) as err:
        Registry().create("flow", "tvl2")
    assert "unknown flow plugin 'tvl2'" in str(err.value)
    assert "did you mean 'tvl1'" in str(err.value) and "dis, farneback, tvl1" in str(err.value)


def test_unknown_kind_is_named():
    with pytest.raises(PluginError, match="unknown plugin kind 'flwo'; did you mean 'flow'"):
        Registry().names("flwo")


def test_params_are_validated_with_suggestions():
    registry = Registry()
    tvl1 = registry.create("flow", "tvl1", tau=0.2, nscales=3)
    assert tvl1.params.tau == 0.2 and tvl1.params.nscales == 3 and tvl1.params.theta == 0.3
    with pytest.raises(PluginError, match="unknown parameter 'nscale' for flow plugin 'tvl1'; did you mean 'nscales'"):
        registry.create("flow", "tvl1", nscale=3)
    with pytest.raises(PluginError, match="parameter 'tau' of flow plugin 'tvl1' expects float, got 'fast'"):
        registry.create("flow", "tvl1", tau="fast")
    with pytest.raises(PluginError, match="unknown DIS preset 'slow'.*ultrafast, fast, medium"):
        registry.create("flow", "dis", preset="slow")


class ShiftFlow:
    """A test flow plugin: reports a constant motion, so its effect on a map is predictable."""

    def __init__(self, params):
        self.params = params

    def __call__(self, onset, apex):
        flow = np.zeros((*onset.shape, 2), np.float32)
        flow[..., 0] = self.params.dx
        flow[: onset.shape[0] // 2, :, 0] = 0  # top half still: makes the map's colour region predictable
        return flow


@dataclass
class ShiftParams:
    dx: float = 1.0


def shift_module(name: str = "shift") -> types.ModuleType:
    module = types.ModuleType(f"inline_{name}")

    @hookimpl
    def mellm_flow():
        yield PluginSpec(name, ShiftFlow, ShiftParams, "constant rightward motion in the bottom half")

    module.mellm_flow = mellm_flow
    return module


def test_inline_plugin_runs_through_the_map_pipeline(face_photos):
    registry = Registry()
    registry.register(shift_module())
    gray = cv2.cvtColor(face_photos["astronaut"], cv2.COLOR_BGR2GRAY)
    cfg = MapsConfig(flow="shift", flow_params={"dx": 2.0}, head_motion="none")
    result = Mapper(cfg, registry)(gray, gray)
    assert result.raw_flow[-1, 0, 0] == 2.0
    bottom, top = result.rgb[-10:], result.rgb[:10]
    assert (bottom[..., 0] == 255).all()  # rightward motion is red, at full brightness
    assert np.array_equal(top, np.repeat(gray[:10, :, None], 3, axis=-1))  # still pixels stay gray


def test_two_plugins_with_one_name_are_both_named():
    registry = Registry()
    registry.register(shift_module("tvl1"))
    with pytest.raises(PluginError) as err:
        registry.names("flow")
    message = str(err.value)
    assert "two flow plugins are named 'tvl1'" in message
    assert "mellm_plugins.flow.tvl1" in message and "inline_tvl1" in message


def test_disable_env_blocks_plugins(monkeypatch):
    monkeypatch.setenv("MELLM_DISABLE_PLUGINS", "flow.dis, colorizer.wheel")
    registry = Registry()
    assert "dis" not in registry.names("flow") and "wheel" not in registry.names("colorizer")
    assert "tvl1" in registry.names("flow")
    registry.register(shift_module("dis"))  # blocked by kind.name whatever provides it
    assert "dis" not in registry.names("flow")


PLUGIN_SOURCE = '''
"""A third-party flow plugin: mirrors TV-L1 but halves the motion."""
from dataclasses import dataclass
import cv2
from mellm_core import PluginSpec, hookimpl

@dataclass
class HalfParams:
    factor: float = 0.5

class Half:
    def __init__(self, params):
        self.params = params
        self.impl = cv2.optflow.DualTVL1OpticalFlow_create()
    def __call__(self, onset, apex):
        return self.impl.calc(onset, apex, None) * self.params.factor

@hookimpl
def mellm_flow():
    yield PluginSpec("halftvl1", Half, HalfParams, "TV-L1 scaled by a factor")
'''


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    """A throwaway distribution, built and installed by pip into a folder that goes on PYTHONPATH."""
    root = tmp_path_factory.mktemp("thirdparty")
    src = root / "src"
    (src / "mellm_half").mkdir(parents=True)
    (src / "mellm_half" / "__init__.py").write_text(PLUGIN_SOURCE)
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "mellm-half"
        version = "1.0"
        [project.entry-points.mellm]
        "flow.halftvl1" = "mellm_half"
        [tool.setuptools]
        packages = ["mellm_half"]
    """))
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(src)],
        check=True, capture_output=True,
    )
    return target


def _env(target) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def test_entry_point_plugin_is_listed_with_its_distribution(installed_plugin):
    out = subprocess.run([sys.executable, "-m", "mellm_core", "plugins", "--json"], env=_env(installed_plugin),
                         capture_output=True, text=True, check=True).stdout
    assert "halftvl1" in json.loads(out)["flow"]
    text = subprocess.run([sys.executable, "-m", "mellm_core", "plugins"], env=_env(installed_plugin),
                          capture_output=True, text=True, check=True).stdout
    assert "halftvl1" in text and "mellm_half (mellm-half)" in text


def test_entry_point_plugin_runs_in_mellm_map(installed_plugin, tmp_path, motion_pair):
    on, ap = tmp_path / "on.png", tmp_path / "ap.png"
    cv2.imwrite(str(on), motion_pair["onset"])
    cv2.imwrite(str(ap), motion_pair["apex"])
    args = [sys.executable, "-m", "mellm_core", "map", str(on), str(ap), "--head-motion", "none", "--json"]
    runs = {}
    for flow in ("halftvl1", "tvl1"):
        proc = subprocess.run([*args, "-o", str(tmp_path / f"{flow}.png"), "--flow", flow, "--save-flow",
                               str(tmp_path / f"{flow}.npy")], env=_env(installed_plugin), capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
        runs[flow] = np.load(tmp_path / f"{flow}.npy")
    np.testing.assert_allclose(runs["halftvl1"], runs["tvl1"] * 0.5, atol=1e-5)


def test_broken_entry_point_is_reported_not_fatal(tmp_path):
    dist = tmp_path / "broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mellm]\nflow.broken = no_such_module_here\n")
    proc = subprocess.run([sys.executable, "-m", "mellm_core", "plugins", "--json"], env=_env(tmp_path),
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert "tvl1" in json.loads(proc.stdout)["flow"]
    assert "flow.broken" in proc.stderr and "no_such_module_here" in proc.stderr


def test_every_shipped_plugin_parameter_has_a_type_a_default_and_help():
    registry = get_registry()
    undocumented = [f"{kind}.{name}.{d.name}" for kind, entries in registry.table().items()
                    for name, entry in entries.items() for d in describe_params(entry.spec.params) if not d.help]
    assert not undocumented


def test_plugins_params_prints_a_plugins_settings(capsys):
    from mellm_core.cli import main

    assert main(["plugins", "--params", "landmarker.dlib68"]) == 0
    out = capsys.readouterr().out
    assert "detect_side (int, default 800)\n    the detector looks at a copy" in out
    assert main(["plugins", "--params", "dataset.synthme", "--json"]) == 0
    docs = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert docs["face_fraction"] == {"name": "face_fraction", "type": "list[float]", "default": [0.5, 0.62],
                                     "help": "landmark box / frame side, range"}  # help after a multi-line field
    assert main(["plugins", "--params", "flow.tvl"]) == 1
    assert "unknown flow plugin 'tvl'; did you mean 'tvl1'?" in capsys.readouterr().err
