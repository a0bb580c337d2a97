"""The data stage: a recipe's samples through its dataset plugin, generating synthetic data when the plugin can."""

from __future__ import annotations

import sys
from pathlib import Path

from mellm_core.config import Recipe
from mellm_core.datasets import Loaded, load_samples
from mellm_core.errors import InputError
from mellm_core.plugins import get_registry


def data_root(recipe: Recipe) -> Path:
    """The dataset root: ``data.root``, or ``output_dir/data`` when it is null."""
    return Path(recipe.data.root) if recipe.data.root else Path(recipe.output_dir) / "data"


def recipe_samples(recipe: Recipe, progress: bool = True) -> Loaded:
    """Every sample of the recipe's dataset; a generative one (SynthME) is generated first when its root is absent."""
    root = data_root(recipe)
    if not root.exists():
        plugin = get_registry().create("dataset", recipe.data.dataset, **recipe.data.params)
        if not hasattr(plugin, "generate"):
            raise InputError(f"dataset root {root} does not exist (set data.root to the {recipe.data.dataset} folder)")
        if progress:
            print(f"data: generating {recipe.data.dataset} under {root}", file=sys.stderr)
        plugin.generate(root, seed=recipe.seed)
    return load_samples(recipe.data.dataset, root, recipe.data.params)
