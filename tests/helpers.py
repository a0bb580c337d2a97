"""Helpers the tests import: small real inputs (motion bumps, instruction rows over coloured maps, manifests of
real frames), a free port, and a dataset plugin registered for a block."""

from __future__ import annotations

import contextlib
import socket
import types

import cv2
import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_motion(shape: tuple[int, int], centre: tuple[float, float], vector: tuple[float, float],
                 sigma: float = 12.0) -> np.ndarray:
    """A smooth Gaussian bump of motion (peak ``vector`` px at ``centre``)."""
    h, w = shape
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    g = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    return np.stack([g * vector[0], g * vector[1]], axis=-1).astype(np.float32)


CLASSES = ["happiness", "surprise", "disgust"]


def write_instructions(out_dir, n: int = 12, prompt: str = "fgmu-en", task: str = "mer"):
    """Instruction rows over class-coloured 64x64 maps (one colour block per class), as the instructions stage
    writes them: ``out_dir/instructions/{train,test}.jsonl`` and ``summary.json``. Returns the train rows."""
    from collections import Counter
    from pathlib import Path

    from mellm_core import create
    from mellm_core.files.storage import Location
    from mellm_core.records import Instruction
    from mellm_core.summaries import InstructionsSummary, PartCounts

    out = Path(out_dir)
    (out / "maps").mkdir(parents=True, exist_ok=True)
    (out / "instructions").mkdir(parents=True, exist_ok=True)
    words = create("prompt", prompt)
    rows = []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        image = np.full((64, 64, 3), 90, np.uint8)
        k = CLASSES.index(label)
        image[8 + 16 * k: 24 + 16 * k, 8:56] = [(255, 0, 0), (0, 255, 0), (0, 0, 255)][k]
        path = out / "maps" / f"m{i}.png"
        cv2.imwrite(str(path), image)
        messages = [{"role": "user", "content": words.user_prompt(task, CLASSES)},
                    {"role": "assistant", "content": words.mer_target(label)}]
        rows.append(Instruction(messages, [str(path)], task, label, [], f"s{i:02d}", "toy", f"sub{i % 4}"))
    for name in ("train", "test"):
        (out / "instructions" / f"{name}.jsonl").write_text("".join(r.to_json() + "\n" for r in rows))
    part = PartCounts(n, n, {task: n})
    subjects = sorted({r.subject for r in rows})
    summary = InstructionsSummary(prompt, "all", CLASSES, "subject", part, part, subjects, subjects,
                                  dict(Counter(str(r.label) for r in rows)), {}, 0)
    summary.write(Location(out / "instructions" / "summary.json"))
    return [r.to_dict() for r in rows]


def write_pairs(root, motion_pair: dict, n: int = 8, size: int = 112):
    """A manifest CSV of ``n`` clips over one real onset/apex pair (resized to ``size``), over 4 subjects and the
    emotions of ``CLASSES`` in turn, for pipeline tests that need real frames but little time. Returns its path."""
    from pathlib import Path

    root = Path(root)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    for name in ("onset", "apex"):
        cv2.imwrite(str(root / "frames" / f"{name}.png"), cv2.resize(motion_pair[name], (size, size)))
    rows = [f"c{i},frames/onset.png,frames/apex.png,s{i % 4},{CLASSES[i % 3]},6+12" for i in range(n)]
    path = root / "pairs.csv"
    path.write_text("sample_id,onset_path,apex_path,subject,emotion,aus\n" + "\n".join(rows))
    return path


@contextlib.contextmanager
def dataset_plugin(name: str, factory, params, description: str = "a test dataset"):
    """A dataset plugin registered for the ``with`` block, as an installed package would register it."""
    from mellm_core import PluginSpec, hookimpl
    from mellm_core.plugins import get_registry

    module = types.ModuleType(f"{name}_dataset")

    @hookimpl
    def mellm_dataset():
        yield PluginSpec(name, factory, params, description)

    module.mellm_dataset = mellm_dataset
    get_registry().register(module)
    try:
        yield
    finally:
        get_registry().unregister(module)


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from the TensorBoard event files under ``folder``, read as TensorBoard reads
    them: TFRecord framing (length, its CRC, the serialized ``Event``, its CRC) around tensorboardX's protos."""
    import struct
    from pathlib import Path

    from tensorboardX.proto import event_pb2

    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(folder).rglob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found
