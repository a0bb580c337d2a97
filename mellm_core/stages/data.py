"""The data stage: a recipe's samples through its dataset plugin, generating synthetic data when the plugin can."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mellm_core.atomic import write_bytes_atomic
from mellm_core.config import Recipe, settings_hash
from mellm_core.datasets import Loaded, load_samples
from mellm_core.errors import InputError
from mellm_core.plugins import get_registry

MARKER = ".mellm-data.json"  # written into data the stage generated: which settings made it


def data_root(recipe: Recipe) -> Path:
    """The dataset root: ``data.root``, or ``output_dir/data`` when it is null."""
    return Path(recipe.data.root) if recipe.data.root else Path(recipe.output_dir) / "data"


def _generated_with(root: Path) -> str | None:
    marker = root / MARKER
    return json.loads(marker.read_text()).get("settings_hash") if marker.is_file() else None


def recipe_samples(recipe: Recipe, progress: bool = True) -> Loaded:
    """Every sample of the recipe's dataset. A generative dataset (SynthME) is generated when its root is absent,
    and generated again when the data there was generated with other settings (seed, plugin params)."""
    root = data_root(recipe)
    wanted = settings_hash(recipe.data.dataset, recipe.data.params, recipe.seed)
    made_with = _generated_with(root)
    if not root.exists() or (made_with is not None and made_with != wanted):
        plugin = get_registry().create("dataset", recipe.data.dataset, **recipe.data.params)
        if not hasattr(plugin, "generate"):
            raise InputError(f"dataset root {root} does not exist (set data.root to the {recipe.data.dataset} folder)")
        if progress:
            state = "again (settings changed)" if root.exists() else ""
            print(f"data: generating {recipe.data.dataset} under {root} {state}".rstrip(), file=sys.stderr)
        plugin.generate(root, seed=recipe.seed, overwrite=root.exists())
        write_bytes_atomic(root / MARKER, json.dumps({"settings_hash": wanted}).encode())
    return load_samples(recipe.data.dataset, root, recipe.data.params)
