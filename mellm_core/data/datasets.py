"""Reading a dataset through its plugin, under a label protocol, with a summary of what was read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mellm_core.data.splits import natural_key, subject_key
from mellm_core.errors import InputError
from mellm_core.plugins import Registry, get_registry
from mellm_core.records import Sample
from mellm_core.text.labels import apply_protocol, get_protocol


@dataclass
class Loaded:
    """A dataset as read: the samples a protocol keeps, the excluded counts, and the loader's warnings."""

    dataset: str
    protocol: str
    samples: list[Sample]
    excluded: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts per emotion (most frequent first) and per subject (natural order), exclusions, warnings."""
        emotions = Counter(s.emotion or "(none)" for s in self.samples)
        several = len({s.dataset for s in self.samples}) > 1  # a composite: qualify subjects by dataset
        subjects = Counter(subject_key(s) if several else s.subject for s in self.samples)
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "samples": len(self.samples),
            "subjects": len(subjects),
            "per_emotion": dict(emotions.most_common()),
            "per_subject": {k: subjects[k] for k in sorted(subjects, key=natural_key)},
            "excluded": dict(self.excluded),
            "excluded_total": sum(self.excluded.values()),
            "warnings": list(self.warnings),
        }


def load_samples(
    name: str,
    root: str | Path,
    params: dict[str, Any] | None = None,
    protocol: str = "all",
    registry: Registry | None = None,
) -> Loaded:
    """Read dataset ``name`` at ``root`` with its plugin (``params`` checked); keep ``protocol``'s samples."""
    chosen = get_protocol(protocol)
    if not Path(root).exists():
        raise InputError(f"dataset root {root} does not exist")
    loader = (registry or get_registry()).create("dataset", name, **(params or {}))
    kept, excluded = apply_protocol(loader.samples(root), chosen)
    return Loaded(name, chosen.name, kept, excluded, list(getattr(loader, "warnings", [])))
