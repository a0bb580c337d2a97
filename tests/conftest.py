"""Shared fixtures: real face photos, synthetic pairs with exact motion, and one local Ray instance per session."""

from __future__ import annotations

import itertools
import logging
import os
import tempfile

import cv2
import numpy as np
import pytest
from helpers import free_port, local_motion

from mellm_core.motion.warp import similarity_flow, warp_forward

# Built models (the tiny Qwen2.5-VL) go to a folder of this test session unless the caller chose one; set before
# any Ray instance starts so that its workers see it too.
os.environ.setdefault("MELLM_CACHE", tempfile.mkdtemp(prefix="mellm-cache-"))


# An S3 endpoint on this machine (moto's S3 server, started by the ``s3`` fixture), named before any Ray instance
# starts so that every worker reaches it the way a cluster's nodes reach a real bucket.
S3_PORT = free_port()
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


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One `mellm serve` (quickstart recipe, tiny backbone, no adapter, ``serving.KEY`` and ``serving.OVERRIDES``)
    shared by every HTTP test of the session."""
    from serving import KEY, OVERRIDES, start_serve, stop_serve

    started = start_serve(tmp_path_factory.mktemp("serve"), OVERRIDES, KEY)
    yield started
    stop_serve(started.proc)
