"""The data stage: samples from a recipe's dataset plugin, generating synthetic data when the plugin can."""

from __future__ import annotations

import sys
from pathlib import Path

from mellm_core.config import Recipe
from mellm_core.errors import InputError
from mellm_core.plugins import get_registry
from mellm_core.records import Sample


def data_root(recipe: Recipe) -> Path:
    """The dataset root: ``data.root``, or ``output_dir/data`` when it is null."""
    return Path(recipe.data.root) if recipe.data.root else Path(recipe.output_dir) / "data"


def load_samples(dataset: str, root: str | Path, params: dict | None = None) -> tuple[list[Sample], list[str]]:
    """Samples and loader warnings of ``dataset`` at ``root``."""
    plugin = get_registry().create("dataset", dataset, **(params or {}))
    samples = plugin.samples(root)
    return samples, list(getattr(plugin, "warnings", []))


def recipe_samples(recipe: Recipe, progress: bool = True) -> tuple[list[Sample], list[str]]:
    """Samples of the recipe's dataset; a generative dataset (SynthME) is generated first when its root is absent."""
    root = data_root(recipe)
    plugin = get_registry().create("dataset", recipe.data.dataset, **recipe.data.params)
    if not root.exists():
        if not hasattr(plugin, "generate"):
            raise InputError(f"dataset root {root} does not exist (set data.root to the {recipe.data.dataset} folder)")
        if progress:
            print(f"data: generating {recipe.data.dataset} under {root}", file=sys.stderr)
        plugin.generate(root, seed=recipe.seed)
    samples = plugin.samples(root)
    return samples, list(getattr(plugin, "warnings", []))
