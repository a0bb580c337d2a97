"""Trained adapter folders (PEFT format): keeping the base model they name loadable after a copy."""

from __future__ import annotations

import json
from pathlib import Path

CONFIG = "adapter_config.json"
BASE = "base"  # sub-folder holding trained base weights, when a backbone trains them too


def anchor_adapter(adapter: str | Path) -> None:
    """Point ``adapter_config.json`` at the adapter's own ``base/`` folder, when it has one, by absolute path.

    Plain ``transformers`` + ``peft`` load the base from ``base_model_name_or_path``; a checkpoint copied to its
    final place must name the copy, not the folder it was written in.
    """
    adapter = Path(adapter)
    base, path = adapter / BASE, adapter / CONFIG
    if base.is_dir() and path.is_file():
        config = json.loads(path.read_text())
        config["base_model_name_or_path"] = str(base.resolve())
        path.write_text(json.dumps(config, indent=2))
