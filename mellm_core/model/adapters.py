"""Trained adapter folders (PEFT format): keeping the base model they name loadable after a copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from mellm_core.errors import InputError
from mellm_core.files.atomic import write_bytes_atomic
from mellm_core.files.layout import ADAPTER, RunLayout
from mellm_core.files.storage import Location, local_folder, model_folder

if TYPE_CHECKING:
    from mellm_core.config import Recipe

CONFIG = "adapter_config.json"
BASE = "base"  # sub-folder holding trained base weights, when a backbone trains them too
GENERATION = "generation_config.json"  # a transformers model's default decoding, which servers apply unasked
TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


def anchor_adapter(adapter: str | Path, final: str | Path | None = None) -> None:
    """Point ``adapter_config.json`` at the adapter's own ``base/`` folder, when it has one, by absolute path
    (of the folder's ``final`` place when it is about to be moved there).

    Plain ``transformers`` + ``peft`` load the base from ``base_model_name_or_path``; a checkpoint copied to its
    final place must name the copy, not the folder it was written in.
    """
    adapter = Path(adapter)
    base, path = adapter / BASE, adapter / CONFIG
    if base.is_dir() and path.is_file():
        config = json.loads(path.read_text())
        wanted = str((Path(final) if final else adapter).resolve() / BASE)
        if config.get("base_model_name_or_path") != wanted:
            config["base_model_name_or_path"] = wanted
            write_bytes_atomic(path, json.dumps(config, indent=2).encode())


POINTER = "adapter.json"  # in a bucket's train/: {"adapter": the published version's folder}
VERSIONS = "adapters"  # in a bucket's train/: one folder per published version


def trained_adapter(output_dir: str) -> str | None:
    """The adapter ``mellm train`` published under ``output_dir``, when there is one: ``train/adapter`` in a local
    folder (swapped in whole by a rename), the version ``train/adapter.json`` names in a bucket (which has no
    renames: the pointer, one object, switches at once to a version written whole beforehand)."""
    train = RunLayout(output_dir).train
    if train.remote and (train / POINTER).is_file():
        trained = Location(json.loads((train / POINTER).read_text())["adapter"])
    else:
        trained = train / ADAPTER
    return str(trained) if (trained / CONFIG).is_file() else None


def publish_remote_adapter(train: Location, source: Location, version: str) -> Location:
    """Write ``source`` as version ``version`` under ``train/adapters/``, switch the pointer to it, then delete
    all versions but it and the one before (a reader may still be fetching that one)."""
    versions = train / VERSIONS
    target = versions / version
    target.copy_from(source)
    previous = trained_adapter(str(train.parent))
    (train / POINTER).write_text(json.dumps({"adapter": str(target)}))
    keep = {target.name} | ({Location(previous).name} if previous else set())
    for name in {f.split("/", 1)[0] for f in versions.files()} - keep:
        (versions / name).rmtree()
    return target


def require_adapter(adapter: str | Location, key: str = "adapter") -> Location:
    """The adapter folder, or an error naming the setting ``key`` when the folder holds no adapter config."""
    location = Location(adapter)
    if not (location / CONFIG).is_file():
        raise InputError(f"{key} {adapter} is not a trained adapter folder (no {CONFIG}; `mellm train` writes one)")
    return location


def local_adapter(adapter: str | Location) -> Path:
    """A local folder for an adapter: itself, or (under a URI) its fetched copy, anchored to its own ``base/``."""
    return local_folder(require_adapter(adapter), prepare=anchor_adapter)


def write_greedy_generation(folder: Path, max_new_tokens: int | None) -> dict | None:
    """Rewrite ``folder``'s ``generation_config.json`` (when the model has one) as ``mellm`` decodes: greedy, no
    sampling or penalties, at most ``max_new_tokens``, special token ids kept; transformers and vLLM apply that file
    by default, and a base's shipped settings (Qwen's repetition_penalty, top_k, ...) would bend their answers.
    Returns what it wrote."""
    from transformers import GenerationConfig

    path = folder / GENERATION
    if not path.is_file():
        return None
    written = json.loads(path.read_text())
    greedy = GenerationConfig(**{k: written[k] for k in TOKEN_IDS if written.get(k) is not None}, do_sample=False,
                              num_beams=1, **({"max_new_tokens": max_new_tokens} if max_new_tokens else {}))
    greedy.save_pretrained(folder)
    return json.loads(path.read_text())


def export_merged(recipe: Recipe, adapter: str | None = None, out: str | None = None) -> tuple[Path, Location]:
    """``mellm export --merge``: the recipe's base model with ``adapter`` (default: the published one) merged in,
    written to ``out`` (default: ``train/merged``, which must be local) with the decoding ``mellm eval`` uses
    (``generation_config.json``) and a model card. Returns (out, adapter)."""
    from mellm_core.kinds import trainable
    from mellm_core.model.card import model_card
    from mellm_core.plugins import get_registry

    layout = RunLayout(recipe.output_dir)
    source = Location(adapter or trained_adapter(recipe.output_dir) or layout.adapter)
    if not out and layout.root.remote:
        raise InputError(f"output_dir {recipe.output_dir} is a URI and merged weights are written locally: give --out")
    target = Path(out or layout.merged.path)
    local = local_adapter(source)
    name = recipe.backbone.name
    backbone = trainable(get_registry().create("backbone", name, **recipe.backbone.params), name, "merged")
    backbone.merge(backbone.load(model_folder(recipe.backbone.model), adapter=str(local)), target)
    cap = recipe.eval.max_new_tokens or getattr(getattr(backbone, "params", None), "max_new_tokens", None)
    generation = write_greedy_generation(target, cap)
    config = json.loads((target / "config.json").read_text()) if (target / "config.json").is_file() else {}
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "the base model's dtype")
    lora = json.loads((local / CONFIG).read_text())
    card = model_card(recipe, str(source), lora, dtype, target.resolve(), generation)
    (target / "README.md").write_text(card)
    return target, source
