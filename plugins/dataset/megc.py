"""Dataset ``megc``: the MEGC 2019 composite database (SMIC-HS + CASME II + SAMM) in its three classes.

Layout: one folder per source dataset under the root, each as its own loader reads it::

    ROOT/SMIC/HS/s1/micro/...          (read by the smic plugin)
    ROOT/CASME2/CASME2-coding-*.xlsx   (read by the casme2 plugin)
    ROOT/SAMM/SAMM_Micro_FACS_Codes_v2.xlsx   (read by the samm plugin)

Samples keep their source dataset (so LOSO folds are per source subject: 16 + 24 + 28 = 68 in the release)
and get the ``megc-3`` label: negative, positive or surprise (CASME II negative = disgust + repression; SAMM
negative = anger, contempt, disgust, fear, sadness; SMIC as labelled). Samples outside the three classes
(others, CASME II's fear and sadness) are left out and counted in ``excluded`` and in a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mellm_core import PluginSpec, create, hookimpl
from mellm_core.records import Sample
from mellm_core.text.labels import apply_protocol

SOURCES = ("smic", "casme2", "samm")


@dataclass
class MegcParams:
    smic_root: str = "SMIC"  # SMIC folder under the root
    casme2_root: str = "CASME2"  # CASME II folder under the root
    samm_root: str = "SAMM"  # SAMM folder under the root
    smic: dict[str, Any] = field(
        default_factory=dict
    )  # parameters of the smic plugin (e.g. {frames_dir: ...})
    casme2: dict[str, Any] = field(default_factory=dict)  # parameters of the casme2 plugin
    samm: dict[str, Any] = field(default_factory=dict)  # parameters of the samm plugin


class Megc:
    """Reads the three source datasets through their plugins and keeps the MEGC 2019 three-class samples."""

    dataset = "megc"

    def __init__(self, params: MegcParams):
        self.params = params
        self.warnings: list[str] = []
        self.excluded: dict[str, int] = {}

    def _source(self, root: Path, name: str) -> list[Sample]:
        loader = create("dataset", name, **getattr(self.params, name))
        samples = loader.samples(root / getattr(self.params, f"{name}_root"))
        self.warnings.extend(f"{name}: {w}" for w in getattr(loader, "warnings", []))
        return samples

    def samples(self, root: str | Path) -> list[Sample]:
        self.warnings = []
        everything = [s for name in SOURCES for s in self._source(Path(root), name)]
        kept, self.excluded = apply_protocol(everything, "megc-3")
        if self.excluded:
            counts = ", ".join(f"{k}: {v}" for k, v in self.excluded.items())
            self.warnings.append(
                f"MEGC 2019 composite leaves out {sum(self.excluded.values())} samples ({counts})"
            )
        return kept


@hookimpl
def mellm_dataset():
    yield PluginSpec("megc", Megc, MegcParams, "MEGC 2019 composite (SMIC-HS + CASME II + SAMM), 3 classes")
