"""The instruction rows as LLaMA-Factory reads them: ShareGPT-style files beside a ``dataset_info.json``.

LLaMA-Factory finds a dataset by its name in ``dataset_dir/dataset_info.json`` and joins relative image paths
to ``media_dir``, which defaults to ``dataset_dir``; so the images are written relative to the instructions
folder, and a run folder that moves (maps and instructions together) still loads.
"""

from __future__ import annotations

import json
import os
import posixpath
from urllib.parse import urlsplit

from mellm_core.records import Instruction

DATASET_INFO = "dataset_info.json"
FILES = {"train": "train.llamafactory.jsonl", "test": "test.llamafactory.jsonl"}


def relative_image(image: str, folder: str) -> str:
    """``image`` relative to ``folder`` when both live on one filesystem (local, or one bucket), else as is."""
    a, b = urlsplit(image), urlsplit(folder)
    if "://" in image or "://" in folder:
        same = (a.scheme, a.netloc) == (b.scheme, b.netloc)
        return posixpath.relpath(a.path, b.path or "/") if same else image
    return os.path.relpath(image, folder)


def llamafactory_files(parts: dict[str, list[Instruction]], folder: str) -> dict[str, str]:
    """{file name: text} of the ShareGPT files of each part and the ``dataset_info.json`` that names them
    ``mellm_train`` and ``mellm_test`` (``dataset: mellm_train`` and ``dataset_dir: <this folder>`` in a
    LLaMA-Factory training config)."""
    out = {}
    info = {}
    for part, rows in parts.items():
        lines = [json.dumps({"messages": r.messages, "images": [relative_image(i, folder) for i in r.images]},
                            ensure_ascii=False) for r in rows]
        out[FILES[part]] = "".join(line + "\n" for line in lines)
        info[f"mellm_{part}"] = {
            "file_name": FILES[part], "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
        }
    out[DATASET_INFO] = json.dumps(info, indent=2) + "\n"
    return out
