"""The instruction rows as a Hugging Face ``datasets`` folder (``instructions.format: hf``), the form TRL's SFT
trainer takes for vision-language models: an ``images`` column of images and ``messages`` whose parts are typed
(``{"type": "image"}``, ``{"type": "text", "text": ...}``), so the model's chat template places the image.

The maps are embedded in the folder (PNG bytes), so it loads anywhere with ``datasets.load_from_disk``::

    from datasets import load_from_disk
    parts = load_from_disk("runs/quickstart/instructions/hf")   # DatasetDict: train, test
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mellm_core.files.storage import Location
from mellm_core.records import IMAGE_TAG, Instruction

FOLDER = "hf"


def typed_messages(messages: list[dict[str, str]]) -> list[dict[str, Any]]:
    """ShareGPT messages with ``<image>`` in the text as typed parts, the image where the tag stood."""
    out = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        for i, text in enumerate(message["content"].split(IMAGE_TAG)):
            if i:
                parts.append({"type": "image", "text": None})
            if text:
                parts.append({"type": "text", "text": text})
        out.append({"role": message["role"], "content": parts})
    return out


def write_hf_dataset(parts: dict[str, list[Instruction]], out: Location) -> None:
    """``out`` made the ``DatasetDict`` of ``parts`` (train, test), images embedded."""
    import datasets

    features = datasets.Features({
        "images": datasets.Sequence(datasets.Image()),
        "messages": [{"role": datasets.Value("string"),
                      "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}]}],
        "task": datasets.Value("string"), "label": datasets.Value("string"),
        "aus": datasets.Sequence(datasets.Value("int32")), "sample_id": datasets.Value("string"),
        "dataset": datasets.Value("string"), "subject": datasets.Value("string"),
    })

    def record(row: Instruction) -> dict[str, Any]:
        images = [{"bytes": Location(i).read_bytes(), "path": Path(i).name} for i in row.images]
        return {"images": images, "messages": typed_messages(row.messages), "task": row.task, "label": row.label,
                "aus": row.aus, "sample_id": row.sample_id, "dataset": row.dataset, "subject": row.subject}

    built = datasets.DatasetDict({name: datasets.Dataset.from_list([record(r) for r in rows], features=features)
                                  for name, rows in parts.items()})
    with tempfile.TemporaryDirectory(prefix="mellm-hf-") as staging:
        built.save_to_disk(staging)
        out.copy_from(Location(staging))
