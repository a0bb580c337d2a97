"""Evaluation splits, all deterministic: leave-one-subject-out folds, cross-dataset zero-shot, fixed lists.

Subjects are keyed ``dataset/subject`` so a composite (MEGC 2019: SMIC + CASME II + SAMM) never merges two
datasets' "s1"; folds come in natural order (sub2 before sub10) and keep the input order within each set.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from mellm_core.errors import InputError
from mellm_core.files.storage import Location
from mellm_core.records import Sample

Fold = tuple[str, list[Sample], list[Sample]]


def natural_key(text: str) -> tuple:
    """Sort key that orders digits by value: "sub2" < "sub10"."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", text)
    )


def subject_key(sample: Sample) -> str:
    """The subject a sample belongs to, qualified by its dataset: "casme2/sub01"."""
    return f"{sample.dataset}/{sample.subject}"


def loso_folds(samples: Iterable[Sample]) -> list[Fold]:
    """One (subject, train, test) fold per subject: test holds that subject's samples, train the others."""
    samples = list(samples)
    subjects = sorted({subject_key(s) for s in samples}, key=natural_key)
    return [
        (
            subject,
            [s for s in samples if subject_key(s) != subject],
            [s for s in samples if subject_key(s) == subject],
        )
        for subject in subjects
    ]


def _of_datasets(samples: list[Sample], names: Iterable[str], role: str) -> list[Sample]:
    names = list(names)
    present = sorted({s.dataset for s in samples})
    missing = [n for n in names if n not in present]
    if missing:
        raise InputError(
            f"{role} dataset '{missing[0]}' has no samples (datasets present: {', '.join(present)})"
        )
    return [s for s in samples if s.dataset in names]


def zero_shot(
    samples: Iterable[Sample], train: Iterable[str], test: Iterable[str]
) -> tuple[list[Sample], list[Sample]]:
    """Cross-dataset split: train on the samples of datasets ``train``, test on those of ``test``."""
    train, test = list(train), list(test)
    overlap = sorted(set(train) & set(test))
    if overlap:
        raise InputError(f"dataset '{overlap[0]}' is both a training and a test dataset in a zero-shot split")
    samples = list(samples)
    return _of_datasets(samples, train, "training"), _of_datasets(samples, test, "test")


def fixed_split(samples: Iterable[Sample], lists: Mapping[str, Iterable[str]]) -> dict[str, list[Sample]]:
    """Samples grouped by fixed id lists ({"train": ids, "TestA": ids}), each in its list's order.

    An id that no sample has, or that two lists share, is an error naming it.
    """
    by_id = {s.sample_id: s for s in samples}
    owner: dict[str, str] = {}
    out: dict[str, list[Sample]] = {}
    for name, ids in lists.items():
        out[name] = []
        for sample_id in ids:
            if sample_id in owner:
                raise InputError(
                    f"sample '{sample_id}' is in both list '{owner[sample_id]}' and list '{name}'"
                )
            if sample_id not in by_id:
                raise InputError(f"list '{name}' names sample '{sample_id}', which the dataset does not have")
            owner[sample_id] = name
            out[name].append(by_id[sample_id])
    return out


def read_id_list(path: str | Path) -> list[str]:
    """Sample ids from a text file (a path or a URI), one a line (blank lines and "#" comments skipped)."""
    where = Location(path)
    if not where.is_file():
        raise InputError(f"id list {where} does not exist")
    lines = (line.split("#", 1)[0].strip() for line in where.read_text(encoding="utf-8-sig").splitlines())
    return [line for line in lines if line]


def listed_ids(entries: list[str], known: set[str]) -> list[str]:
    """The ids that ``entries`` list, in order and once each: id-list files, or patterns with ``*`` over the
    ``known`` sample ids (``dfme/TestA/*``: a dataset's own list, as its sample ids name it)."""
    out: dict[str, None] = {}
    for entry in entries:
        if "*" in entry and not Location(entry).is_file():
            matched = sorted(i for i in known if fnmatch.fnmatchcase(i, entry))
            if not matched:
                raise InputError(f"the id pattern '{entry}' matches no sample id")
            out |= dict.fromkeys(matched)
        else:
            out |= dict.fromkeys(read_id_list(entry))
    return list(out)
