"""The data stage: a recipe's samples through its dataset plugin, generating synthetic data when the plugin can."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from mellm_core.config import Recipe, settings_hash
from mellm_core.data.datasets import Loaded, load_samples
from mellm_core.errors import InputError
from mellm_core.files.atomic import write_bytes_atomic
from mellm_core.files.layout import RunLayout
from mellm_core.files.storage import Location, cache_dir
from mellm_core.plugins import get_registry

MARKER = ".mellm-data.json"  # written into data the stage generated: which settings made it
UPLOADED = ".mellm-uploaded.json"  # written last into an uploaded copy: which settings, all files in place


def data_root(recipe: Recipe) -> Location:
    """The dataset root: ``data.root``, or ``output_dir/data`` when it is null."""
    return Location(recipe.data.root) if recipe.data.root else RunLayout(recipe.output_dir).data


def _generated_with(root: Location) -> str | None:
    marker = root / MARKER
    return json.loads(marker.read_text()).get("settings_hash") if marker.is_file() else None


def recipe_samples(recipe: Recipe, progress: bool = True) -> Loaded:
    """Every sample of the recipe's dataset. A generative dataset (SynthME) is generated when its root is absent,
    and generated again when the data there was generated with other settings (seed, plugin params)."""
    root = data_root(recipe)
    wanted = settings_hash(recipe.data.dataset, recipe.data.params, recipe.seed)
    if root.remote:
        return _remote_samples(recipe, root, wanted, progress)
    return _local_samples(recipe, root.path, wanted, progress)


def _local_samples(recipe: Recipe, root: Path, wanted: str, progress: bool) -> Loaded:
    made_with = _generated_with(Location(root))
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


def _remote_samples(recipe: Recipe, root: Location, wanted: str, progress: bool) -> Loaded:
    """Generated data under a cloud ``output_dir``: made in the local cache, uploaded once, and read by every
    node from the bucket. A dataset of one's own is listed by its plugin from a local or shared folder."""
    if recipe.data.root:
        raise InputError(f"data.root {root} is a URI; dataset plugins list a local or shared folder (a `manifest` "
                         "dataset's CSV may name frames by URI)")
    if not hasattr(get_registry().create("dataset", recipe.data.dataset, **recipe.data.params), "generate"):
        raise InputError(f"dataset {recipe.data.dataset} needs data.root set to its local or shared folder "
                         f"(output_dir {recipe.output_dir} is a URI)")
    local = cache_dir() / "data" / wanted[:16]
    loaded = _local_samples(recipe, local, wanted, progress)
    uploaded = root / UPLOADED
    if not uploaded.is_file() or json.loads(uploaded.read_text()).get("settings_hash") != wanted:
        if progress:
            print(f"data: uploading {recipe.data.dataset} to {root}", file=sys.stderr)
        root.copy_from(Location(local))
        uploaded.write_text(json.dumps({"settings_hash": wanted}))
    prefix = str(local)

    def moved(path: str) -> str:
        return str(root / Path(path).relative_to(prefix).as_posix())

    samples = [dataclasses.replace(s, onset_path=moved(s.onset_path), apex_path=moved(s.apex_path))
               for s in loaded.samples]
    return dataclasses.replace(loaded, samples=samples)
