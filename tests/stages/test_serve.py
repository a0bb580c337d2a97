"""`mellm serve` on the tiny backbone over real HTTP: answers, every kind of bad request, batching, auth, the web
page in headless Chromium, and a clean stop on SIGTERM. One server (a `mellm serve` process) serves the module.
"""

from __future__ import annotations

import base64
import http.client
import select
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest
import requests
from serving import AUTH, BODY_LIMIT, KEY, OVERRIDES, PIXEL_LIMIT, VIDEO_PIXEL_LIMIT, Server

from mellm_core.serving.upload import (
    RequestError,
    authorized,
    check_content_length,
    form_fields,
    image_size,
    key_digest,
)

CHROMIUM = "/usr/bin/chromium"


# ---------------------------------------------------------------- request checks, without a server


def _form(parts: list[tuple[str, bytes]], boundary: str = "b0undary") -> bytes:
    body = b""
    for name, data in parts:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.png\"\r\n"
                 "Content-Type: image/png\r\n\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def _forged_png(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its (absent) pixel data never had."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


def _many_chunks(png: bytes, count: int) -> bytes:
    """The PNG with ``count`` empty ancillary chunks after its header (a cheap file that is costly to walk)."""
    import struct
    import zlib

    empty = struct.pack(">I", 0) + b"teXt" + struct.pack(">I", zlib.crc32(b"teXt"))
    header_end = 8 + 12 + 13
    return png[:header_end] + empty * count + png[header_end:]


def _mpo(frames: dict[str, np.ndarray], name: str) -> bytes:
    """A phone's JPEG: the frame as an MPO (a JPEG with a second picture in its MPF data)."""
    import io

    from PIL import Image

    first = Image.fromarray(cv2.cvtColor(frames[name], cv2.COLOR_BGR2RGB))
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[first.resize((64, 64))])
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    return data


def test_form_fields_reads_named_parts_and_refuses_malformed_bodies():
    body = b"preamble\r\n" + _form([("onset", b"\x00\r\n--b0und"), ("apex", b"")])
    assert form_fields(body, 'multipart/form-data; boundary="b0undary"') == {"onset": b"\x00\r\n--b0und", "apex": b""}
    for content_type, status in [("application/json", 415), (None, 415), ("multipart/form-data", 400)]:
        with pytest.raises(RequestError) as info:
            form_fields(body, content_type)
        assert info.value.status == status
    with pytest.raises(RequestError, match="no closing boundary"):
        form_fields(body[:-20], "multipart/form-data; boundary=b0undary")
    with pytest.raises(RequestError, match="given twice"):
        form_fields(_form([("onset", b"a"), ("onset", b"b")]), "multipart/form-data; boundary=b0undary")


def test_image_size_reads_the_header_only():
    assert image_size(_png(np.zeros((30, 40, 3), np.uint8)), "onset", 10_000) == (40, 30)
    for width, height, words in [(5000, 4000, "5000x4000 = 20000000 pixels"), (60_000, 50_000, "pixel limit")]:
        with pytest.raises(RequestError, match=words) as info:
            image_size(_forged_png(width, height), "onset", PIXEL_LIMIT)
        assert info.value.status == 413
    with pytest.raises(RequestError, match="truncated PNG"):
        image_size(_png(np.zeros((30, 40, 3), np.uint8))[:-12], "onset", PIXEL_LIMIT)


def test_content_length_and_api_key_checks():
    check_content_length(None, 10)
    check_content_length("10", 10)
    for header, status in [("11", 413), ("ten", 400), ("-1", 400)]:
        with pytest.raises(RequestError) as info:
            check_content_length(header, 10)
        assert info.value.status == status
    digest = key_digest(KEY)
    assert authorized(None, None) and authorized("Bearer anything", None)
    assert authorized(f"Bearer {KEY}", digest) and authorized(f"bearer  {KEY} ", digest)
    assert not any(authorized(h, digest) for h in (None, "", KEY, f"Basic {KEY}", f"Bearer {KEY}x", "Bearer"))


def test_a_failing_batch_is_answered_item_by_item_so_one_bad_request_fails_alone():
    """The model replica's batches: when one fails, each request is tried alone; only the bad one fails, as 400
    for a request's fault and 500 (detail for the log) for the server's."""
    import asyncio

    from mellm_core.errors import InputError
    from mellm_core.stages.serve import ModelWorker

    calls = []

    def run(items: list[str]) -> list[dict]:
        calls.append(list(items))
        if "bad" in items:
            raise InputError("item bad is wrong")
        if "broken" in items:
            raise RuntimeError("replica fault")
        return [{"text": i.upper()} for i in items]

    worker = object.__new__(ModelWorker.func_or_class)
    worker.turn, worker.broken = asyncio.Lock(), ""
    answers = asyncio.run(worker._isolated(run, ["a", "bad", "b", "broken"]))
    rid = answers[3].pop("request_id")  # the replica logged the traceback under it
    assert answers == [{"text": "A"}, {"status": 400, "error": "item bad is wrong"}, {"text": "B"},
                       {"status": 500, "error": "RuntimeError: replica fault"}] and len(rid) == 16
    assert calls == [["a", "bad", "b", "broken"], ["a"], ["bad"], ["b"], ["broken"]]
    calls.clear()
    assert asyncio.run(worker._isolated(run, ["a", "b"])) == [{"text": "A"}, {"text": "B"}] and len(calls) == 1


def test_a_server_fault_answers_a_request_id_and_logs_the_traceback(caplog):
    import json

    from mellm_core.stages.serve import server_fault

    try:
        raise ValueError("/home/secret/path went wrong")
    except ValueError as exc:
        with caplog.at_level("ERROR", logger="ray.serve"):
            answer = server_fault("request POST /v1/analyze", exc)
    body = json.loads(answer.body)
    rid = answer.headers["X-Request-Id"]
    assert answer.status_code == 500 and set(body) == {"error"} and rid in body["error"]
    assert "secret" not in body["error"] and "Traceback" not in body["error"]
    logged = caplog.records[-1]
    assert rid in logged.getMessage() and logged.exc_info[0] is ValueError


def test_an_empty_key_and_a_missing_adapter_fail_before_anything_starts(tmp_path):
    from mellm_core.config import load_recipe
    from mellm_core.errors import ConfigError, InputError
    from mellm_core.model.predictor import model_note, recipe_labels, train_command
    from mellm_core.motion.facs import PROTOTYPES
    from mellm_core.stages.serve import build_app

    recipe = load_recipe("quickstart", [f"output_dir={tmp_path}", *OVERRIDES])
    with pytest.raises(InputError, match="MELLM_API_KEY is set but empty"):
        build_app(recipe, "")
    for limit in ("max_video_fps", "max_video_frames", "max_video_pixels"):
        with pytest.raises(ConfigError, match=limit):
            load_recipe("quickstart", [f"serve.{limit}=0"])
    recipe.serve.adapter = str(tmp_path / "nowhere")
    with pytest.raises(InputError, match=f"serve.adapter {tmp_path / 'nowhere'} is not a trained adapter folder"):
        build_app(recipe, KEY)
    recipe = load_recipe("quickstart", [f"output_dir={tmp_path}"])  # protocols `all` and no instructions built
    assert recipe_labels(recipe) == list(PROTOTYPES)  # a fresh checkout serves the base model on the basic emotions
    assert "mellm train quickstart" in model_note(recipe, None, "mellm train quickstart")
    assert train_command("my recipe.yaml", ["serve.port=18765", "train.lr=1e-3", "serve={port: 1}", "x=a b"]) == \
        "mellm train 'my recipe.yaml' train.lr=1e-3 'x=a b'"  # the service's settings do not train anything


def test_app_from_env_builds_the_recipe_at_mellm_recipe_with_args_as_overrides(tmp_path, monkeypatch):
    from ray.serve import Application

    from mellm_core.errors import InputError
    from mellm_core.stages.serve import app_from_env

    monkeypatch.delenv("MELLM_RECIPE", raising=False)
    with pytest.raises(InputError, match="MELLM_RECIPE is not set"):
        app_from_env({})
    recipe = tmp_path / "serve.yaml"
    recipe.write_text(f"output_dir: {tmp_path}\nbackbone: {{name: qwen2_5_vl, model: tiny-random}}\n")
    monkeypatch.setenv("MELLM_RECIPE", str(recipe))
    assert isinstance(app_from_env({}), Application)
    assert isinstance(app_from_env({"eval.protocol": "casme2-5", "serve.max_batch_size": 4}), Application)


def test_a_busy_port_is_refused_before_ray_starts():
    from mellm_core.errors import InputError
    from mellm_core.stages.serve import check_port_free

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InputError, match=f"serve.port {port} on 127.0.0.1 cannot be used"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)


# ---------------------------------------------------------------- the session's server (conftest.server)


@pytest.fixture(scope="module")
def frames(motion_pair) -> dict[str, np.ndarray]:
    """The astronaut pair at 256x256 (BGR)."""
    return {k: cv2.resize(motion_pair[k], (256, 256), interpolation=cv2.INTER_AREA) for k in ("onset", "apex")}


def _post(server: Server, files: dict[str, bytes] | None = None, headers: dict[str, str] | None = None,
          **kwargs) -> requests.Response:
    files = {k: (f"{k}.png", v) for k, v in (files or {}).items()}
    return requests.post(server.url + "v1/analyze", files=files or None, headers={**AUTH, **(headers or {})},
                         timeout=120, **kwargs)


def test_healthz_is_open(server):
    answer = requests.get(server.url + "healthz", timeout=30)
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_a_good_request_returns_the_map_the_mapper_draws_and_the_models_answer(server, frames):
    from mellm_core.config import load_recipe
    from mellm_core.files.frames import to_gray
    from mellm_core.model.predictor import Predictor
    from mellm_core.motion.mapper import Mapper, face_box
    from mellm_core.text.labels import get_protocol

    answer = _post(server, {"onset": _png(frames["onset"]), "apex": _png(frames["apex"])})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"emotion", "aus", "analysis", "mmc_map_png_base64", "head_motion", "timings", "note"}
    # nothing is trained under the server's output_dir: the answer says so, as `mellm serve` did on stderr, with
    # the command that trains one (the recipe and its overrides, but not the service's serve.* settings)
    run = server.log.parent / "run"
    trained_by = [o for o in OVERRIDES if not o.startswith("serve.")]
    train = " ".join(["mellm train quickstart", f"output_dir={run}", *trained_by])
    assert body["note"] == (f"note: no trained adapter under {run / 'train'}: the base model tiny-random answers "
                            f"(random weights: its answers mean nothing); train one with `{train}`")
    assert body["note"] in server.log.read_text().splitlines()
    assert body["emotion"] is None or body["emotion"] in get_protocol("casme2-5").classes
    assert isinstance(body["analysis"], str) and all(isinstance(au, int) for au in body["aus"])
    served = cv2.imdecode(np.frombuffer(base64.b64decode(body["mmc_map_png_base64"]), np.uint8), cv2.IMREAD_COLOR)
    served = cv2.cvtColor(served, cv2.COLOR_BGR2RGB)
    recipe = load_recipe("quickstart", OVERRIDES)
    onset = to_gray(frames["onset"])
    expected = Mapper(replace(recipe.maps, flow_region="face"))(onset, to_gray(frames["apex"]))
    assert recipe.serve.flow_region == "face" and np.array_equal(served, expected.rgb)
    rows, cols = face_box(expected.landmarks, recipe.maps.crop_margin, onset.shape)
    outside = np.ones(onset.shape, bool)
    outside[rows, cols] = False  # the flow ran on the face only: no motion drawn outside it
    assert outside.any() and np.array_equal(served[outside], np.repeat(onset[outside][:, None], 3, axis=1))
    assert body["head_motion"] == pytest.approx(expected.head_motion, abs=1e-4)
    here = Predictor(recipe)([expected.rgb], recipe.serve.max_new_tokens)[0]  # the same model, in this process
    assert (body["analysis"], body["emotion"], body["aus"]) == (here.text, here.emotion, here.aus)
    timings = body["timings"]
    assert {"decode_s", "landmarks_s", "flow_s", "colorize_s", "map_s", "model_s", "total_s"} <= set(timings)
    assert timings["batch_size"] >= 1 and timings["total_s"] >= timings["map_s"] > 0
    jpeg = {k: cv2.imencode(".jpg", frames[k])[1].tobytes() for k in ("onset", "apex")}
    assert _post(server, jpeg).status_code == 200
    mpo = {k: _mpo(frames, k) for k in ("onset", "apex")}
    assert _post(server, mpo).status_code == 200


def _raw(server: Server, method: str, path: str, headers: dict[str, str], chunks: list[bytes],
         chunked: bool = False) -> tuple[int, dict]:
    """A request sent by hand: declared lengths that the body does not match, bodies sent in chunks."""
    import json

    host, port = server.url.split("//")[1].strip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.putrequest(method, path)
        for key, value in {**AUTH, **headers}.items():
            conn.putheader(key, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for chunk in chunks:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if select.select([conn.sock], [], [], 0.05)[0]:  # answered early: stop sending, read the answer
                break
        else:
            if chunked:
                conn.send(b"0\r\n\r\n")
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


def _bad_requests(frames: dict[str, np.ndarray]) -> dict[str, tuple[Callable[[Server], tuple[int, dict]], int, str]]:
    """name -> (send, expected status, words the error must hold)."""
    onset, apex = _png(frames["onset"]), _png(frames["apex"])
    jpeg = cv2.imencode(".jpg", frames["apex"])[1].tobytes()
    idat = apex.index(b"IDAT")
    corrupt = apex[:idat + 100] + bytes(b ^ 0x5A for b in apex[idat + 100:idat + 400]) + apex[idat + 400:]
    blank = _png(np.full((256, 256, 3), 127, np.uint8))
    large = _png(np.zeros((1001, 1000, 3), np.uint8))
    gif = bytes.fromhex("474946383961010001000000002c00000000010001000002024401003b")
    form = _form([("onset", onset), ("apex", apex)])
    parts = b"--b0undary\r\n" * 150_000 + b"--b0undary--\r\n"
    multipart = {"Content-Type": "multipart/form-data; boundary=b0undary"}

    def post(**files: bytes) -> Callable[[Server], tuple[int, dict]]:
        def send(server: Server) -> tuple[int, dict]:
            answer = _post(server, files)
            return answer.status_code, answer.json()
        return send

    def call(method: str, path: str = "/v1/analyze") -> Callable[[Server], tuple[int, dict]]:
        def send(server: Server) -> tuple[int, dict]:
            answer = requests.request(method, server.url + path.lstrip("/"), headers=AUTH, timeout=60)
            return answer.status_code, answer.json()
        return send

    def raw(headers: dict[str, str], chunks: list[bytes], chunked: bool = False) -> Callable:
        return lambda server: _raw(server, "POST", "/v1/analyze", headers, chunks, chunked)

    return {
        "missing field": (post(onset=onset), 400, "missing field apex"),
        "not an image": (post(onset=onset, apex=b"hello, these are not pixels"), 400, "apex is not a readable image"),
        "a path instead of bytes": (post(onset=b"/etc/passwd", apex=apex), 400, "onset is not a readable image"),
        "empty file": (post(onset=onset, apex=b""), 400, "apex is empty"),
        "truncated PNG": (post(onset=onset, apex=apex[: len(apex) // 2]), 400, "apex is a truncated PNG"),
        "truncated JPEG": (post(onset=onset, apex=jpeg[: len(jpeg) * 2 // 3]), 400, "apex is a truncated JPEG"),
        "corrupt pixel data": (post(onset=onset, apex=corrupt), 400, "apex is not a readable image"),
        "other image format": (post(onset=gif, apex=gif), 415, "onset is a GIF image"),
        "size mismatch": (post(onset=onset, apex=_png(frames["apex"][:200])), 422, "differ in size"),
        "no face": (post(onset=blank, apex=blank), 422, "face"),
        "over the pixel limit": (post(onset=large, apex=large), 413, "serve.max_pixels"),
        "forged header over the pixel limit": (post(onset=_forged_png(5000, 4000), apex=apex), 413, "5000x4000"),
        "declared body over the byte limit": (raw({**multipart, "Content-Length": str(BODY_LIMIT + 1)}, []), 413,
                                              "serve.max_body_bytes"),
        "streamed body over the byte limit": (raw(multipart, [b"x" * 100_000] * (BODY_LIMIT // 100_000 + 2), True),
                                              413, "serve.max_body_bytes"),
        "malformed multipart": (raw({**multipart, "Content-Length": str(len(form) - 30)}, [form[:-30]]), 400,
                                "no closing boundary"),
        "wrong content type": (raw({"Content-Type": "application/json", "Content-Length": "2"}, [b"{}"]), 415,
                               "Content-Type 'application/json' is not accepted"),
        "no content type": (raw({"Content-Length": "0"}, []), 415, "Content-Type '(none)'"),
        "wrong method": (call("GET"), 405, "method GET is not allowed on /v1/analyze"),
        "wrong method PUT": (call("PUT"), 405, "method PUT is not allowed"),
        "unknown path": (call("GET", "/v1/nothing"), 404, "no such path /v1/nothing"),
        "an image 300x1": (post(onset=_png(np.zeros((1, 300, 3), np.uint8)),
                                apex=_png(np.zeros((1, 300, 3), np.uint8))), 400, "over 200 times"),
        "a PNG of 120,000 empty chunks": (post(onset=_many_chunks(onset, 120_000), apex=apex), 400,
                                          "chunks is refused"),
        "150,000 empty multipart parts": (raw({**multipart, "Content-Length": str(len(parts))}, [parts]), 400,
                                          "over 16 parts"),
    }


@pytest.fixture(scope="module")
def bad_requests(frames) -> dict[str, tuple[Callable[[Server], tuple[int, dict]], int, str]]:
    return _bad_requests(frames)


BAD = list(_bad_requests(dict.fromkeys(("onset", "apex"), np.zeros((8, 8, 3), np.uint8))))  # the table's names


@pytest.mark.parametrize("case", BAD)
def test_bad_requests_get_their_4xx_with_a_json_error(server, bad_requests, case):
    send, status, words = bad_requests[case]
    got, body = send(server)
    assert (got, set(body)) == (status, {"error"}), body
    assert words in body["error"]


def test_the_server_keeps_serving_after_bad_requests(server, frames):
    assert requests.get(server.url + "healthz", timeout=30).status_code == 200
    assert _post(server, {"onset": _png(frames["onset"]), "apex": _png(frames["apex"])}).status_code == 200


def test_32_concurrent_requests_all_succeed_in_batches(server, frames):
    files = {"onset": _png(frames["onset"]), "apex": _png(frames["apex"])}
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda _: _post(server, files), range(32)))
    assert [a.status_code for a in answers] == [200] * 32
    sizes = [a.json()["timings"]["batch_size"] for a in answers]
    assert max(sizes) > 1, sizes


def test_slow_uploads_neither_starve_the_service_nor_hold_it(server, frames):
    """40 connections trickling their bodies: /healthz and a whole request still answer, and each slow upload
    ends with 408 once serve.body_timeout_s has passed."""
    host, port = server.url.split("//")[1].strip("/").split(":")
    slow = []
    try:
        for _ in range(40):
            conn = socket.create_connection((host, int(port)), timeout=60)
            conn.sendall(f"POST /v1/analyze HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
                         "Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: 100000\r\n\r\n"
                         "--b0undary\r\n".encode())
            slow.append(conn)
        assert requests.get(server.url + "healthz", timeout=20).status_code == 200
        assert _post(server, {"onset": _png(frames["onset"]), "apex": _png(frames["apex"])}).status_code == 200
        for conn in slow:
            answer = b""
            while not answer.endswith(b"}") and (chunk := conn.recv(4096)):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408") and b"serve.body_timeout_s" in answer, answer[:300]
    finally:
        for conn in slow:
            conn.close()


def test_work_beyond_the_queue_gets_503_with_retry_after_and_the_rest_is_answered(server, frames):
    files = {"onset": _png(frames["onset"]), "apex": _png(frames["apex"])}
    with ThreadPoolExecutor(80) as pool:
        answers = list(pool.map(lambda _: _post(server, files), range(80)))
    codes = [a.status_code for a in answers]
    assert set(codes) == {200, 503}, codes
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.headers["Retry-After"] == "1" and "serve.max_queued_requests" in busy.json()["error"]
    assert _post(server, files).status_code == 200


def test_every_route_but_the_page_and_healthz_needs_the_key_and_the_docs_stay_off(server):
    from fastapi.routing import APIRoute

    from mellm_core.stages.serve import OPEN_ROUTES, api

    def flat(routes: list) -> list[tuple[str, str]]:  # Serve's ingress nests the class's routes in a router
        out = []
        for r in routes:
            if isinstance(r, APIRoute):
                out += [(method, r.path) for method in r.methods]
            elif hasattr(r, "original_router"):
                out += flat(r.original_router.routes)
        return out

    routes = flat(api.routes)
    assert {("POST", "/v1/analyze"), ("POST", "/v1/chat/completions"), ("GET", "/v1/models")} <= set(routes)
    for method, path in routes:
        answer = requests.request(method, server.url + path.lstrip("/"), timeout=30)
        if (method, path) in OPEN_ROUTES:
            assert answer.status_code == 200, path
        else:
            assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer", (method, path)
    for path in ("docs", "redoc", "openapi.json"):
        assert requests.get(server.url + path, timeout=30).status_code == 401
        assert requests.get(server.url + path, headers=AUTH, timeout=30).status_code == 404


def test_the_page_may_run_only_its_own_script_and_never_in_a_frame(server):
    answer = requests.get(server.url, timeout=30)
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy
    assert policy.count("'sha256-") == 2  # the page's one script and one style, by hash
    assert answer.headers["X-Frame-Options"] == "DENY" and answer.headers["X-Content-Type-Options"] == "nosniff"


def test_a_host_outside_serve_allowed_hosts_is_refused():
    """Against DNS rebinding of a keyless local server: only the listed Host names are answered (not /healthz's
    probes). The middleware decides before any route runs."""
    from starlette.testclient import TestClient

    from mellm_core.stages.serve import Guard, api

    api.state.guard = Guard(None, {"localhost"}, {})
    client = TestClient(api, raise_server_exceptions=False)
    refused = client.get("/v1/models", headers={"Host": "attacker.example:8000"})
    assert refused.status_code == 400 and "Host 'attacker.example' is not served here" in refused.json()["error"]
    assert client.get("/v1/nothing", headers={"Host": "localhost:8000"}).status_code == 404  # past the guard
    assert client.get("/healthz", headers={"Host": "10.0.0.7:8000"}).status_code != 400
    from mellm_core.stages.serve import host_name

    assert [host_name(h) for h in ("LocalHost:8000", "[::1]", "[::1]:8000", "127.0.0.1", "[::1")] == [
        "localhost", "::1", "::1", "127.0.0.1", ""]


def test_requests_need_the_api_key_but_healthz_does_not(server, frames):
    files = {"onset": ("onset.png", _png(frames["onset"])), "apex": ("apex.png", _png(frames["apex"]))}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
        answer = requests.post(server.url + "v1/analyze", files=files, headers=headers, timeout=60)
        assert answer.status_code == 401 and "API key" in answer.json()["error"]
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert requests.get(server.url + "healthz", timeout=30).status_code == 200


def test_a_killed_model_replica_costs_its_requests_a_503_and_the_service_recovers(server, frames):
    """Requests in flight when the model replica's process dies get 503 with Retry-After (never a 500); Serve
    starts a new replica and the service answers again."""
    files = {"onset": _png(frames["onset"]), "apex": _png(frames["apex"])}
    replica = next(p for p in psutil.Process(server.proc.pid).children(recursive=True)
                   if "ServeReplica:mellm:ModelWorker" in " ".join(p.cmdline()))
    with ThreadPoolExecutor(8) as pool:
        sent = [pool.submit(_post, server, files) for _ in range(8)]
        time.sleep(0.6)  # the first requests are mapped and wait in the model's batch (serve.batch_wait_s 0.5)
        replica.kill()
        answers = [f.result() for f in sent]
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 503}, [a.text for a in answers]
    assert all(a.headers["Retry-After"] and "retry" in a.json()["error"] for a in answers if a.status_code == 503)
    deadline = time.monotonic() + 180
    while (answer := _post(server, files)).status_code != 200:
        assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
        time.sleep(2)
    assert answer.json()["timings"]["batch_size"] >= 1


def test_the_web_page_uploads_two_frames_and_shows_the_map_and_the_result(server, frames, tmp_path):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Debian's chromium is not installed at {CHROMIUM}; .ci/run installs it (apt-get install chromium)")
    for name in ("onset", "apex"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), frames[name])
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((256, 256, 3), 127, np.uint8))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server.url)
            page.set_input_files("#onset", str(tmp_path / "onset.png"))
            page.set_input_files("#apex", str(tmp_path / "apex.png"))
            page.fill("#key", KEY)
            page.click("#submit")
            page.wait_for_selector("#output:not([hidden])", timeout=60_000)
            assert page.evaluate("() => { const m = document.getElementById('map');"
                                 " return m.complete ? [m.naturalWidth, m.naturalHeight] : null; }") == [256, 256]
            assert page.is_hidden("#error")
            assert page.text_content("#emotion").strip() and page.text_content("#aus").strip()
            assert page.text_content("#head").startswith("dx ")
            assert "batch_size" in page.text_content("#timings")
            assert page.is_visible("#note") and "no trained adapter under" in page.text_content("#note")
            assert "train one with `mellm train quickstart" in page.text_content("#note")
            page.set_input_files("#onset", str(tmp_path / "blank.png"))
            page.set_input_files("#apex", str(tmp_path / "blank.png"))
            page.click("#submit")
            page.wait_for_selector("#error:not([hidden])", timeout=60_000)
            assert "face" in page.text_content("#error") and page.is_hidden("#output") and page.is_hidden("#note")
            page.goto(server.url)  # a fresh page: no frames chosen
            page.click("#submit")
            assert "choose an onset and an apex frame, or a video" in page.text_content("#error")
        finally:
            browser.close()


def test_the_web_page_takes_a_video_and_plots_its_motion_with_the_spotted_interval(server, face_video):
    from playwright.sync_api import sync_playwright

    from mellm_core.files.video import open_video

    path, count = face_video, open_video(face_video).count()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server.url)
            page.set_input_files("#video", str(path))
            page.fill("#key", KEY)
            page.click("#submit")
            page.wait_for_selector("#output:not([hidden])", timeout=60_000)
            assert page.is_visible("#spotted") and page.is_hidden("#error")
            caption = page.text_content("#interval")
            assert caption.startswith(f"motion over the video's {count} frames; spotted micro-expression: frames ")
            points = page.get_attribute("#motion polyline", "points").split()
            assert len(points) == count  # one point a frame
            assert float(page.get_attribute("#spotted-interval", "width")) > 2
        finally:
            browser.close()


@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    """A SynthME long video (mp4, 160x160, 30 fps) of a real face with micro-expressions."""
    from mellm_plugins.dataset.synthme.faces import builtin_photos, find_faces
    from mellm_plugins.dataset.synthme.longvideo import long_video

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    long_video(path, find_faces(builtin_photos(), "dlib68")[0], seed=0, size=160)
    return path


def _avi(path: Path, frames: list[np.ndarray] | np.ndarray, fps: float, count: int = 1) -> bytes:
    """An MJPG AVI of ``frames`` (or of one frame ``count`` times) at ``fps``: its bytes."""
    first = frames[0] if isinstance(frames, list) else frames
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (first.shape[1], first.shape[0]))
    for frame in frames if isinstance(frames, list) else [frames] * count:
        writer.write(frame)
    writer.release()
    return path.read_bytes()


def test_a_video_is_held_to_the_frame_count_its_header_states(face_video, tmp_path):
    """The map replica decodes no more frames than the header states (the count the limits were checked on),
    and a file that ends sooner is refused as truncated, not spotted on what is left."""
    from mellm_core.config import SpotConfig
    from mellm_core.files.video import open_video
    from mellm_core.stages.serve import MapWorker

    worker = object.__new__(MapWorker.func_or_class)
    worker.spot_cfg = SpotConfig()
    data, count = face_video.read_bytes(), open_video(face_video).count()
    held = worker._spot(data, 30.0, 100)
    assert len(held["motion"]) == 100 and held["interval"]["offset"] <= 100, held.get("error")
    assert len(worker._spot(data, 30.0, count + 2)["motion"]) == count  # a header may count two frames too many
    cut = worker._spot(data, 30.0, count + 3)
    assert cut == {"status": 400, "error": f"video is truncated or corrupt: frame {count + 1} does not decode, and "
                                           f"its header states {count + 3} frames"}


def test_a_video_is_spotted_then_analysed(server, face_video):
    """A video part instead of onset and apex: the recipe's spotter finds the strongest micro-expression, whose
    frames are mapped and answered as a pair would be; the interval and the motion measure come back."""
    from mellm_core.files.video import open_video
    from mellm_core.plugins import create

    path = face_video
    video = open_video(path)
    spotter = create("spotter", "flow")  # the recipe's spot section: the defaults
    local = next(i for i in spotter(video.frames(), video.fps) if i.kind == "me")
    answer = requests.post(server.url + "v1/analyze", files={"video": ("clip.mp4", path.read_bytes())},
                           headers=AUTH, timeout=120)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # the same interval; its score to float rounding (the replica runs OpenCV and BLAS on one thread)
    assert body["interval"] == {**local.to_dict(), "score": pytest.approx(local.score, abs=1e-4)}
    assert len(body["motion"]) == len(spotter.signal)
    assert {"spot_s", "map_s", "model_s"} <= set(body["timings"]) and body["mmc_map_png_base64"]
    assert body["note"].startswith("note: no trained adapter under")


def test_bad_videos_get_their_4xx_and_the_server_keeps_serving(server, face_video, frames, tmp_path):
    """Size, rate, duration, frame count and frames x pixels are read from the header and refused (413, naming the
    setting) before any frame is decoded; a video that does not decode as its header states is 400; one without
    a face 422. Never a 5xx, and the server answers afterwards."""
    mp4 = face_video.read_bytes()
    capture, faces = cv2.VideoCapture(str(face_video)), []
    while (read := capture.read())[0]:
        faces.append(read[1])
    capture.release()
    whole = _avi(tmp_path / "face.avi", faces, 30.0)  # MJPG: its header survives a cut, unlike the mp4's
    black, gray = np.zeros((32, 32, 3), np.uint8), np.full((64, 64, 3), 127, np.uint8)
    cases = {
        "not a video": (b"\x00" * 5000, 400, "video is not a video the server can read"),
        "empty": (b"", 400, "video is empty"),
        "an mp4 cut in half (its header is at the end)": (mp4[:len(mp4) // 2], 400, "not a video the server can read"),
        "frames over the pixel limit": (_avi(tmp_path / "1.avi", np.zeros((1000, 1024, 3), np.uint8), 30.0, 2), 413,
                                        "1024x1000 = 1024000 pixels, over the limit of 1000000 (serve.max_pixels)"),
        "over the frame rate limit": (_avi(tmp_path / "2.avi", black, 300.0, 10), 413,
                                      "300 frames a second, over the limit of 240 (serve.max_video_fps)"),
        "over the duration limit": (_avi(tmp_path / "3.avi", black, 30.0, 21 * 30), 413,
                                    "lasts 21.0 s, over the limit of 20 s (serve.max_video_s)"),
        "over the frame limit": (_avi(tmp_path / "4.avi", black, 100.0, 1201), 413,
                                 "1201 frames, over the limit of 1200 (serve.max_video_frames)"),
        "over the frames x pixels limit": (_avi(tmp_path / "5.avi", np.zeros((480, 640, 3), np.uint8), 30.0, 70), 413,
                                           f"70 frames of 640x480 = 21504000 pixels, over the limit of "
                                           f"{VIDEO_PIXEL_LIMIT} (serve.max_video_pixels)"),
        "truncated": (whole[:len(whole) // 4], 400, "video is truncated or corrupt: frame "),
        "corrupt": (mp4[:1000] + bytes(b ^ 0x5A for b in mp4[1000:300_000]) + mp4[300_000:], 400, "corrupt"),
        "no face": (_avi(tmp_path / "6.avi", gray, 30.0, 30), 422, "no face in the video's first frame"),
    }
    for name, (data, status, words) in cases.items():
        answer = requests.post(server.url + "v1/analyze", files={"video": ("clip", data)}, headers=AUTH, timeout=120)
        assert (answer.status_code, set(answer.json())) == (status, {"error"}), (name, answer.text)
        assert words in answer.json()["error"], (name, answer.json())
    assert requests.get(server.url + "healthz", timeout=30).status_code == 200
    assert _post(server, {"onset": _png(frames["onset"]), "apex": _png(frames["apex"])}).status_code == 200


def test_sigterm_stops_serve_and_its_ray_within_30_s(server):
    """Runs last of the HTTP tests (test_serve.py sorts after test_openai_compat.py): the shared server goes down."""
    ray_processes = psutil.Process(server.proc.pid).children(recursive=True)
    assert ray_processes
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0, server.log.read_text()[-3000:]
    _, alive = psutil.wait_procs(ray_processes, timeout=max(0.0, 30 - (time.monotonic() - started)))
    assert not alive, [(p.pid, p.name()) for p in alive]
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "healthz", timeout=5)

