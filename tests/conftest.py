"""Shared fixtures: real face photos, synthetic pairs with exact motion, and one local Ray instance per session."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import tempfile
import types

import cv2
import numpy as np
import pytest

from mellm_core.motion.warp import similarity_flow, warp_forward

# Built models (the tiny Qwen2.5-VL) go to a folder of this test session unless the caller chose one; set before
# any Ray instance starts so that its workers see it too.
os.environ.setdefault("MELLM_CACHE", tempfile.mkdtemp(prefix="mellm-cache-"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# An S3 endpoint on this machine (moto's S3 server, started by the ``s3`` fixture), named before any Ray instance
# starts so that every worker reaches it the way a cluster's nodes reach a real bucket.
S3_PORT = _free_port()
os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{S3_PORT}", AWS_ACCESS_KEY_ID="mellm-test",
                  AWS_SECRET_ACCESS_KEY="mellm-test", AWS_DEFAULT_REGION="us-east-1")


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def face_photos() -> dict[str, np.ndarray]:
    """Real face photographs (BGR uint8) shipped by scikit-image and matplotlib."""
    import skimage.data
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as img:
        hopper = np.array(img.convert("RGB"))
    return {"astronaut": _bgr(skimage.data.astronaut()), "hopper": _bgr(hopper)}


def local_motion(shape: tuple[int, int], centre: tuple[float, float], vector: tuple[float, float],
                 sigma: float = 12.0) -> np.ndarray:
    """A smooth Gaussian bump of motion (peak ``vector`` px at ``centre``)."""
    h, w = shape
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    g = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    return np.stack([g * vector[0], g * vector[1]], axis=-1).astype(np.float32)


@pytest.fixture(scope="session")
def motion_pair(face_photos) -> dict:
    """Astronaut onset, an apex moved by a known head motion plus a mouth-corner raise, and the exact flow."""
    onset = face_photos["astronaut"]
    shape = onset.shape[:2]
    flow = similarity_flow(shape, 0.6, -0.4, 0.2) + local_motion(shape, (250, 190), (1.2, -1.8))
    flow += local_motion(shape, (200, 95), (0.0, -1.5), sigma=9)
    return {"onset": onset, "apex": warp_forward(onset, flow), "flow": flow}


@pytest.fixture(scope="session")
def ray_local():
    """One local two-CPU Ray instance shared by every Ray test of the session."""
    import ray

    from mellm_core.stages.cluster import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A local S3-compatible server (moto) at ``AWS_ENDPOINT_URL``, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=S3_PORT, verbose=False)
    server.start()
    yield os.environ["AWS_ENDPOINT_URL"]
    server.stop()


_BUCKETS = itertools.count()


@pytest.fixture()
def s3(s3_server) -> str:
    """A new empty bucket; its ``s3://`` URI."""
    import boto3

    name = f"mellm-test-{next(_BUCKETS)}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture()
def fresh_registry(monkeypatch):
    """A registry rebuilt from entry points and the environment for this test only."""
    from mellm_core import plugins

    plugins.reset_registry()
    yield plugins
    plugins.reset_registry()


CLASSES = ["happiness", "surprise", "disgust"]


def write_instructions(out_dir, n: int = 12, prompt: str = "fgmu-en", task: str = "mer"):
    """Instruction rows over class-coloured 64x64 maps (one colour block per class), as the instructions stage
    writes them: ``out_dir/instructions/{train,test}.jsonl`` and ``summary.json``. Returns the train rows."""
    import json
    from pathlib import Path

    from mellm_core import create
    from mellm_core.records import Instruction

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
    (out / "instructions" / "summary.json").write_text(json.dumps({"labels": CLASSES}))
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


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """One `mellm serve` (quickstart recipe, tiny backbone, no adapter, ``serving.KEY`` and ``serving.OVERRIDES``)
    shared by every HTTP test of the session."""
    from serving import KEY, OVERRIDES, start_serve, stop_serve

    started = start_serve(tmp_path_factory.mktemp("serve"), OVERRIDES, KEY)
    yield started
    stop_serve(started.proc)
