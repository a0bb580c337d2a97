"""Dataset ``combined``: several datasets read through their own plugins as one sample list.

For the paper's zero-shot protocols (train on DFME, test on CASME II and CAS(ME)^3): each sample keeps its
source dataset, so ``instructions.split.kind=zero-shot`` can pick training and test datasets by name. Each
part's ``root`` is relative to the recipe's ``data.root`` (or absolute)::

    data:
      dataset: combined
      root: /data
      params:
        parts:
          - {dataset: dfme, root: DFME}
          - {dataset: casme2, root: CASME2, params: {frames_dir: Cropped}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mellm_core import PluginSpec, create, hookimpl
from mellm_core.errors import InputError
from mellm_core.records import Sample

PART_KEYS = ("dataset", "root", "params")


@dataclass
class CombinedParams:
    parts: list[dict[str, Any]] = field(default_factory=list)  # [{dataset, root, params?}, ...]

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("parts must list at least one {dataset, root} entry")
        for i, part in enumerate(self.parts):
            unknown = sorted(set(part) - set(PART_KEYS))
            if unknown or "dataset" not in part or "root" not in part:
                got = ", ".join(sorted(part)) or "nothing"
                raise ValueError(f"parts[{i}] must have keys dataset and root (and optionally params), got {got}")


class Combined:
    """Concatenates the samples of every part; sample ids must stay unique across parts."""

    def __init__(self, params: CombinedParams):
        self.params = params
        self.warnings: list[str] = []

    def samples(self, root: str | Path) -> list[Sample]:
        self.warnings = []
        out: list[Sample] = []
        owner: dict[str, str] = {}
        for part in self.params.parts:
            loader = create("dataset", part["dataset"], **dict(part.get("params") or {}))
            for sample in loader.samples(Path(root) / part["root"]):
                if sample.sample_id in owner:
                    raise InputError(f"sample id '{sample.sample_id}' appears in both {owner[sample.sample_id]} and "
                                     f"{part['dataset']}; give the parts distinct ids")
                owner[sample.sample_id] = part["dataset"]
                out.append(sample)
            self.warnings.extend(f"{part['dataset']}: {w}" for w in getattr(loader, "warnings", []))
        return out


@hookimpl
def mellm_dataset():
    yield PluginSpec("combined", Combined, CombinedParams, "several datasets as one, each read by its own plugin")
