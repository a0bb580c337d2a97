"""The serve stage: MELLM behind HTTP on Ray Serve.

Three deployments that scale apart: ``Gateway`` (FastAPI ingress: limits, auth, the form, the web page),
``MapWorker`` (CPU: decode, landmarks, flow, colorizer) and ``ModelWorker`` (the backbone with its adapter, GPU where
present, answering batches with ``@serve.batch``). Every client mistake is a 4xx ``{"error": ...}``; see
``mellm_core.serving.upload`` for the checks made before any pixel is decoded. (No ``from __future__ import
annotations`` here: FastAPI reads the handlers' annotations at run time.)
"""

import asyncio
import base64
import hashlib
import logging
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.resources import files
from typing import Any, cast
from urllib.parse import urlsplit

import cv2
import numpy as np
import ray
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from ray import serve
from ray.exceptions import RayActorError
from ray.serve import Application
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from mellm_core.config import MapsConfig, Recipe, ServeConfig, SpotConfig, device_warnings, load_recipe
from mellm_core.errors import InputError, MellmError
from mellm_core.files.frames import decode_gray
from mellm_core.files.video import Video, VideoDecodeError, open_video
from mellm_core.model.adapters import require_adapter
from mellm_core.model.predictor import Predictor, default_adapter, model_note, recipe_labels, train_command
from mellm_core.motion.mapper import Mapper
from mellm_core.motion.regions import RegionMotion
from mellm_core.plugins import get_registry
from mellm_core.serving.chat import check_json_type, completion, model_list, parse_chat
from mellm_core.serving.upload import (
    API_KEY_ENV,
    RequestError,
    authorized,
    check_content_length,
    check_same_size,
    form_boundary,
    form_fields,
    image_size,
    key_digest,
    read_body,
    require_files,
    video_header,
)
from mellm_core.stages.cluster import init_ray
from mellm_core.text.turns import takes_text

APP_NAME = "mellm"
RECIPE_ENV = "MELLM_RECIPE"
SERVE_SHUTDOWN_S = 20.0  # longest wait for Serve to stop; Ray's own shutdown follows within the 30 s promised
FRAMES = ("onset", "apex")
GATEWAY_CONNECTIONS = 1000  # requests one gateway replica holds at once (its work is waiting, not computing)
ROUTES = "GET /, GET /healthz, POST /v1/analyze, POST /v1/chat/completions, GET /v1/models"

api = FastAPI(title="mellm", docs_url=None, redoc_url=None, openapi_url=None)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one shape of every error answer: ``{"error": message}`` (characters that cannot be sent, such as a
    client's lone surrogate echoed back, become ``?``)."""
    text = message.encode("utf-8", "replace").decode("utf-8")
    return JSONResponse({"error": text}, status_code=status, headers=headers)


REPLICA_GONE = RayActorError  # a replica died (or is unavailable, restarting) under a request


def replica_gone() -> JSONResponse:
    """503: the replica answering the request stopped; Serve starts another, so the client may retry."""
    return error(503, "the replica answering this request stopped; a new one is starting: retry in a few seconds",
                 {"Retry-After": "5"})


def server_fault(where: str, exc: BaseException | str, rid: str | None = None) -> JSONResponse:
    """A 500 that names a request id and nothing else; the log gets the id with the traceback or the detail."""
    rid = rid or uuid.uuid4().hex[:16]
    log = logging.getLogger("ray.serve")
    if isinstance(exc, BaseException):
        log.error("%s failed (request id %s)", where, rid, exc_info=exc)
    else:
        log.error("%s failed (request id %s): %s", where, rid, exc)
    return error(500, f"internal error (request id {rid}; the server's log holds the details)", {"X-Request-Id": rid})


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Routing errors (404, 405) in the API's error shape."""
    if exc.status_code == 404:
        message = f"no such path {request.url.path}; the API has {ROUTES}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}; the API has {ROUTES}"
    else:
        message = str(exc.detail)
    return error(exc.status_code, message, dict(exc.headers or {}))


@api.exception_handler(Exception)
async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    """A fault of the server (never of the request): a request id in the answer, the traceback in the log."""
    return server_fault(f"request {request.method} {request.url.path}", exc)


OPEN_ROUTES = {("GET", "/"), ("GET", "/healthz")}  # the static page (it holds no data) and liveness


@api.middleware("http")
async def _guard(request: Request, call_next: Callable) -> Any:
    """Before any route: the Host allow-list (``serve.allowed_hosts``, against DNS rebinding) and the API key on
    every route but the page and /healthz; after it, headers that keep the page out of frames and scripts."""
    guard: Guard = request.app.state.guard
    host = host_name(request.headers.get("host") or "")
    if guard.hosts and host not in guard.hosts and request.url.path != "/healthz":
        return error(400, f"Host '{host}' is not served here (serve.allowed_hosts)")
    if (request.method, request.url.path) not in OPEN_ROUTES and not authorized(
            request.headers.get("authorization"), guard.key):
        return error(401, "missing or wrong API key: send the header Authorization: Bearer <key>",
                     {"WWW-Authenticate": "Bearer"})
    response = await call_next(request)
    response.headers.update(guard.headers)
    return response


def host_name(value: str) -> str:
    """The host of a Host header or an allowed-hosts entry, without port or IPv6 brackets, lower case."""
    try:
        return (urlsplit("//" + value.strip()).hostname or "").lower()
    except ValueError:  # e.g. a bracket never closed
        return ""


@dataclass
class Guard:
    """What ``_guard`` checks and adds: the key's digest (None: no key), allowed hosts (empty: any), headers."""

    key: bytes | None
    hosts: set[str]
    headers: dict[str, str]


def security_headers(page_html: str) -> dict[str, str]:
    """A Content-Security-Policy that lets the page run only its own inline script and style (by hash) and talk
    only to this origin, plus no framing and no MIME sniffing."""
    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}(?:\s[^>]*)?>(.*?)</{tag}>", page_html, flags=re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(x.encode()).digest()).decode()}'" for x in found)

    policy = (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
              "img-src 'self' data: blob:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; "
              "base-uri 'none'")
    return {"Content-Security-Policy": policy, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}


@serve.deployment
class MapWorker:
    """Decodes an onset/apex pair and draws its MMC-map, ``slots`` pairs at a time (CPU-bound work)."""

    def __init__(self, maps: MapsConfig, spot: SpotConfig, slots: int):
        cv2.setNumThreads(slots)
        self.mapper = Mapper(maps)
        self.spot_cfg = spot
        self.slots = asyncio.Semaphore(slots)

    def _spot(self, video: bytes, fps: float, count: int) -> dict[str, Any]:
        """A video's strongest micro-expression (else its strongest expression): its onset and apex frames as
        PNG, the interval, and the motion measure per frame. Decoding stops at the ``count`` frames its header
        states (the count the gateway checked against the limits); a file that ends sooner is corrupt (400)."""
        import tempfile
        from pathlib import Path

        from mellm_core.motion.spotting import strongest

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="mellm-video-") as folder:
            path = Path(folder) / "video"  # the name errors give
            path.write_bytes(video)
            try:
                clip = open_video(path, fps, stated=count)
            except InputError:
                return {"status": 400, "error": "video is corrupt: its first frame does not decode"}
            try:
                best, motion = strongest(clip, self.spot_cfg)
                frames = [cv2.imencode(".png", clip.frame(n))[1].tobytes() for n in (best.onset, best.apex)]
            except VideoDecodeError as exc:  # frames missing or changing size
                return {"status": 400, "error": str(exc)}
            except InputError as exc:  # no face on the first frame, no expression
                return _decode_failure(clip) or {"status": 422, "error": f"the video could not be spotted: {exc}"}
            except cv2.error as exc:  # frames OpenCV cannot work on, e.g. too small for the flow's pyramid
                return _decode_failure(clip) or {"status": 422,
                                                 "error": f"the video's frames could not be spotted: {exc.err}"}
        return {"frames": frames, "interval": best.to_dict(), "motion": [round(v, 4) for v in motion],
                "spot_s": time.perf_counter() - t0}

    async def spot(self, video: bytes, fps: float, count: int) -> dict[str, Any]:
        """``_spot`` in a slot, or ``{"status", "error"}`` for a corrupt video or one without a spottable
        expression."""
        async with self.slots:
            return await asyncio.to_thread(self._spot, video, fps, count)

    def _map(self, onset: bytes, apex: bytes) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            grays = [decode_gray(data, name) for data, name in zip((onset, apex), FRAMES, strict=True)]
        except InputError as exc:
            return {"status": 400, "error": str(exc)}
        t1 = time.perf_counter()
        try:
            result = self.mapper(*grays)
        except InputError as exc:  # no face, frames of two sizes
            return {"status": 422, "error": str(exc)}
        except cv2.error as exc:  # e.g. frames too small for the flow's pyramid
            return {"status": 422, "error": f"the frames could not be mapped: {exc.err}"}
        png = cv2.imencode(".png", cv2.cvtColor(result.rgb, cv2.COLOR_RGB2BGR))[1]
        t2 = time.perf_counter()
        timings = {"decode_s": t1 - t0, **{k: v for k, v in result.timings.items() if k != "total_s"},
                   "map_s": t2 - t0}
        return {"rgb": result.rgb, "png": png.tobytes(), "head_motion": result.head_motion, "timings": timings,
                "regions": result.regions}

    async def __call__(self, onset: bytes, apex: bytes) -> dict[str, Any]:
        """The map (RGB and PNG), head motion and timings, or ``{"status", "error"}`` for a bad pair."""
        async with self.slots:
            return await asyncio.to_thread(self._map, onset, apex)


def _decode_failure(clip: Video) -> dict[str, Any] | None:
    """400 naming the fault when ``clip`` does not decode as its header states, else None: a corrupt file's
    garbage frames show no face or expression, which spotting would otherwise blame."""
    try:
        for _ in clip.frames():
            pass
    except VideoDecodeError as exc:
        return {"status": 400, "error": str(exc)}
    return None


@serve.deployment
class ModelWorker:
    """The recipe's backbone and adapter, answering the MMC-maps that arrive together in one batch.

    One generate call at a time runs on the model (analyze and chat batches take turns), and a batch that fails
    is answered item by item, so one bad request fails alone: a failed item is ``{"status", "error"}``.
    """

    def __init__(self, recipe: Recipe, adapter: str | None, labels: list[str], device: str):
        self.predictor = Predictor(recipe, adapter, device, labels=labels)
        self.max_new_tokens = recipe.serve.max_new_tokens
        self.turn = asyncio.Lock()
        self.broken = ""  # set by a device failure; check_health then asks Serve for a new replica
        self.analyze.set_max_batch_size(recipe.serve.max_batch_size)
        self.analyze.set_batch_wait_timeout_s(recipe.serve.batch_wait_s)
        self.chat.set_max_batch_size(recipe.serve.max_batch_size)
        self.chat.set_batch_wait_timeout_s(recipe.serve.batch_wait_s)

    def check_health(self) -> None:
        """Serve's periodic probe: a replica whose device failed (a CUDA error) is replaced, not kept answering."""
        if self.broken:
            raise RuntimeError(f"the model's device failed: {self.broken}")

    async def _isolated(self, run: Callable[[list], list], items: list) -> list:
        """``run(items)``; when that fails, ``run`` on each item alone, with failures as ``{"status", "error"}``."""
        whole = await self._run(run, items)
        if isinstance(whole, list):
            return whole
        if len(items) == 1:
            return [_failure(whole)]
        answers: list[Any] = []
        for item in items:
            alone = await self._run(run, [item])
            answers += alone if isinstance(alone, list) else [_failure(alone)]
        return answers

    async def _run(self, run: Callable[[list], list], items: list) -> list | Exception:
        """``run(items)`` in a thread, one generate call at a time on this replica; its exception if it fails."""
        try:
            async with self.turn:
                return await asyncio.to_thread(run, items)
        except Exception as exc:
            self._note(exc)
            return exc

    def _note(self, exc: Exception) -> None:
        """Remember a failure of the device itself (not of a request), for ``check_health``."""
        if "CUDA error" in str(exc) or "device-side assert" in str(exc):
            self.broken = str(exc)[:200]

    def _analyze(self, maps: list[tuple[np.ndarray, dict[str, RegionMotion]]]) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        answers = self.predictor([rgb for rgb, _ in maps], self.max_new_tokens, [regions for _, regions in maps])
        seconds = time.perf_counter() - t0
        return [{"analysis": a.text, "emotion": a.emotion, "aus": a.aus, "model_s": seconds, "batch_size": len(maps)}
                for a in answers]

    @serve.batch
    async def analyze(self, maps: list[tuple[np.ndarray, dict[str, RegionMotion]]]) -> list[dict[str, Any]]:
        """One answer per (map, its regions' motion): text, parsed emotion and AUs, the batch's generation time
        and size. A prompt that takes the flow as text reads the regions; any other, the map."""
        return await self._isolated(self._analyze, maps)

    def _chat(self, asks: list[tuple[str, np.ndarray | None, int | None]]) -> list[dict[str, Any]]:
        groups: dict[int | None, list[int]] = {}
        for i, (_, _, cap) in enumerate(asks):
            groups.setdefault(cap, []).append(i)
        texts = [""] * len(asks)
        for cap, members in groups.items():
            answers = self.predictor.texts([asks[i][0] for i in members], [asks[i][1] for i in members], cap)
            for i, text in zip(members, answers, strict=True):
                texts[i] = text
        return [{"text": t} for t in texts]

    @serve.batch
    async def chat(self, asks: list[tuple[str, np.ndarray | None, int | None]]) -> list[dict[str, Any]]:
        """One answer per (prompt, RGB image or None for a text-only model, answer cap); asks with the same cap
        are generated together."""
        return await self._isolated(self._chat, asks)


def decode_rgb(data: bytes) -> np.ndarray | None:
    """An RGB array of PNG or JPEG bytes, or None when they do not decode."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if pixels is None else cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


def _failure(exc: Exception) -> dict[str, Any]:
    """A failed item's answer: the request's fault (400, with its message) or the server's (500 with a request
    id, the traceback logged here, in the replica, under that id)."""
    if isinstance(exc, MellmError):
        return {"status": 400, "error": str(exc)}
    rid = uuid.uuid4().hex[:16]
    logging.getLogger("ray.serve").error("model replica: a batch item failed (request id %s)", rid, exc_info=exc)
    return {"status": 500, "error": f"{type(exc).__name__}: {exc}", "request_id": rid}


def _answer_error(answer: dict[str, Any], where: str) -> JSONResponse | None:
    """The error answer for a failed item, else None."""
    if "error" not in answer:
        return None
    if answer["status"] >= 500:
        return server_fault(where, answer["error"], answer.get("request_id"))
    return error(answer["status"], answer["error"])


@serve.deployment(ray_actor_options={"num_cpus": 0})  # waits on the other two; its own work is small
@serve.ingress(api)
class Gateway:
    """HTTP ingress: the web page, health, ``POST /v1/analyze`` and the OpenAI-compatible ``/v1/chat/completions``
    and ``/v1/models``, with limits and auth checked first."""

    def __init__(self, mapper: DeploymentHandle, model: DeploymentHandle, cfg: ServeConfig, key: bytes | None,
                 model_name: str, text_only: bool, note: str | None):
        self.mapper = mapper
        self.model = model
        self.cfg = cfg
        self.key = key
        self.model_name = model_name
        self.text_only = text_only  # the backbone reads text only: chat requests carry no image
        self.note = note  # an untrained base model answers (and what trains one): part of every analysis
        self.waiting = 0  # requests this gateway has handed to the map or model replicas and not yet answered
        self.page_html = (files("mellm_core.serving") / "web" / "index.html").read_text(encoding="utf-8")
        api.state.guard = Guard(key, {host_name(h) for h in cfg.allowed_hosts}, security_headers(self.page_html))

    async def _body(self, request: Request) -> bytes:
        """The body within ``serve.max_body_bytes`` and ``serve.body_timeout_s`` (413, 408)."""
        check_content_length(request.headers.get("content-length"), self.cfg.max_body_bytes)
        try:
            return await asyncio.wait_for(read_body(request.stream(), self.cfg.max_body_bytes),
                                          self.cfg.body_timeout_s)
        except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11, two before
            raise RequestError(408, f"the request body did not arrive within {self.cfg.body_timeout_s:g} s "
                                    "(serve.body_timeout_s)") from None

    def _busy(self) -> JSONResponse | None:
        """503 with Retry-After when ``serve.max_queued_requests`` requests already wait, else None."""
        if self.waiting < self.cfg.max_queued_requests:
            return None
        return error(503, f"the server is busy ({self.waiting} requests waiting, serve.max_queued_requests); "
                          "retry in a moment", {"Retry-After": "1"})

    @api.get("/", response_class=HTMLResponse)
    async def page(self) -> HTMLResponse:
        """The upload page (static; it sends the API key the user types with each request)."""
        return HTMLResponse(self.page_html)

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        """Liveness, open without a key."""
        return {"status": "ok"}

    @api.get("/v1/models")
    async def models(self) -> JSONResponse:
        """The served model in the OpenAI list format (its id is the recipe's ``backbone.model``)."""
        return JSONResponse(model_list(self.model_name))

    @api.post("/v1/chat/completions")
    async def chat(self, request: Request) -> JSONResponse:
        """An OpenAI chat-completions request (one MMC-map as a data URL and the question; the question alone for
        a model that reads text only) -> the model's answer."""
        try:
            check_json_type(request.headers.get("content-type"))
            body = await self._body(request)
            ask = await asyncio.to_thread(parse_chat, body, self.model_name, self.cfg.max_new_tokens,
                                          self.cfg.max_pixels, self.cfg.max_prompt_chars, self.text_only)
        except RequestError as exc:
            return error(exc.status, str(exc))
        except ClientDisconnect:
            return error(400, "the client closed the connection before sending the whole body")
        rgb = None  # a text-only model's question has no image
        if ask.image is not None:
            rgb = await asyncio.to_thread(decode_rgb, ask.image)
            if rgb is None:
                return error(400, "image_url is not a readable image: send a PNG or JPEG file")
        if busy := self._busy():
            return busy
        self.waiting += 1
        try:
            answer = await self.model.chat.remote((ask.prompt, rgb, ask.max_tokens))
        except REPLICA_GONE:
            return replica_gone()
        finally:
            self.waiting -= 1
        return _answer_error(answer, "chat") or JSONResponse(completion(self.model_name, answer["text"]))

    def _frames(self, body: bytes, content_type: str | None
                ) -> tuple[list[bytes], tuple[bytes, float, int] | None]:
        """Onset and apex from a multipart body, their headers checked; or a video part with its frame rate and
        frame count, its header checked (CPU work, run in a thread)."""
        fields = form_fields(body, content_type)
        if "video" in fields:
            fps, count = video_header(fields["video"], self.cfg)
            return [], (fields["video"], fps, count)
        frames = require_files(fields, FRAMES)
        check_same_size([image_size(data, name, self.cfg.max_pixels) for data, name in zip(frames, FRAMES,
                                                                                          strict=True)], FRAMES)
        return frames, None

    @api.post("/v1/analyze")
    async def analyze(self, request: Request) -> JSONResponse:
        """Onset and apex frames (multipart files), or a video whose strongest micro-expression is spotted ->
        emotion, AUs, analysis text, MMC-map, head motion, timings (and for a video the interval and motion)."""
        t0 = time.perf_counter()
        try:
            content_type = request.headers.get("content-type")
            form_boundary(content_type)
            body = await self._body(request)
            frames, video = await asyncio.to_thread(self._frames, body, content_type)  # off the event loop
        except RequestError as exc:
            return error(exc.status, str(exc))
        except ClientDisconnect:
            return error(400, "the client closed the connection before sending the whole body")
        if busy := self._busy():
            return busy
        self.waiting += 1
        spotted: dict[str, Any] = {}
        try:
            if video is not None:
                spotted = await self.mapper.spot.remote(*video)
                if "error" in spotted:
                    return error(spotted["status"], spotted["error"])
                frames = spotted["frames"]
            mapped = await self.mapper.remote(*frames)
            if "error" in mapped:
                return error(mapped["status"], mapped["error"])
            answer = await self.model.analyze.remote((mapped["rgb"], mapped["regions"]))
        except REPLICA_GONE:
            return replica_gone()
        finally:
            self.waiting -= 1
        if failed := _answer_error(answer, "analyze"):
            return failed
        timings = {**({"spot_s": spotted["spot_s"]} if spotted else {}), **mapped["timings"],
                   "model_s": answer["model_s"], "batch_size": answer["batch_size"],
                   "total_s": time.perf_counter() - t0}
        return JSONResponse({
            "emotion": answer["emotion"],
            "aus": answer["aus"],
            "analysis": answer["analysis"],
            "mmc_map_png_base64": base64.b64encode(mapped["png"]).decode("ascii"),
            "head_motion": [round(v, 4) for v in mapped["head_motion"]],
            **({"interval": spotted["interval"], "motion": spotted["motion"]} if spotted else {}),
            "timings": {k: v if isinstance(v, int) else round(v, 4) for k, v in timings.items()},
            **({"note": self.note} if self.note else {}),
        })


def _replicas(count: int, autoscaling: bool, target: int) -> dict[str, Any]:
    """Fixed replicas, or Serve autoscaling between 1 and ``count`` aiming at ``target`` requests per replica."""
    if autoscaling:
        return {"autoscaling_config": {"min_replicas": 1, "max_replicas": count, "target_ongoing_requests": target}}
    return {"num_replicas": count}


def build_app(recipe: Recipe, api_key: str | None = None, note: str | None = None) -> Application:
    """The Serve application for a recipe; fails here, before any replica starts, on a missing adapter or labels.
    ``note`` (an untrained base model answers: ``model_note``) is added to every ``/v1/analyze`` answer."""
    cfg = recipe.serve
    if api_key == "":
        raise InputError(f"{API_KEY_ENV} is set but empty: give it a key, or unset it to serve without one")
    adapter = default_adapter(recipe)
    if adapter:
        require_adapter(adapter, "serve.adapter")
    labels = recipe_labels(recipe)
    text_only = takes_text(get_registry().create("backbone", recipe.backbone.name, **recipe.backbone.params))
    slots = max(1, math.ceil(cfg.map_cpus))
    # Requests each replica holds: the work it is doing and as much again waiting, so that it never idles
    # between requests; the rest wait in the gateway (and beyond it in Serve's proxy).
    map_in_flight, model_in_flight = 2 * slots, 2 * cfg.max_batch_size
    # @serve.deployment turns each class into a Deployment at run time (a type checker sees the class)
    mapper = cast(Any, MapWorker).options(
        **_replicas(cfg.map_replicas, cfg.autoscaling, slots), max_ongoing_requests=map_in_flight,
        ray_actor_options={"num_cpus": cfg.map_cpus},
    ).bind(replace(recipe.maps, flow_region=cfg.flow_region), recipe.spot, slots)
    model = cast(Any, ModelWorker).options(
        **_replicas(cfg.model_replicas, cfg.autoscaling, cfg.max_batch_size), max_ongoing_requests=model_in_flight,
        ray_actor_options={"num_gpus": cfg.model_gpus} if cfg.model_gpus > 0 else {},
    ).bind(recipe, adapter, labels, "cuda" if cfg.model_gpus > 0 else "cpu")
    # The gateway's own work is asynchronous (reading bodies, waiting on replicas; parsing runs in threads), so it
    # takes every connection: slow uploads end at serve.body_timeout_s and work beyond serve.max_queued_requests
    # gets 503 at once, instead of queueing unseen in Serve's proxy where /healthz would wait behind them.
    return cast(Any, Gateway).options(max_ongoing_requests=GATEWAY_CONNECTIONS).bind(
        mapper, model, cfg, key_digest(api_key) if api_key is not None else None, recipe.backbone.model, text_only,
        note)


def app_from_env(args: dict[str, Any]) -> Application:
    """Application builder for Serve config files (KubeRay): the recipe at $MELLM_RECIPE, ``args`` as overrides."""
    path = os.environ.get(RECIPE_ENV)
    if not path:
        raise InputError(f"{RECIPE_ENV} is not set: point it at the recipe to serve")
    overrides = [f"{k}={v}" for k, v in (args or {}).items()]
    recipe = load_recipe(path, overrides)
    note = model_note(recipe, default_adapter(recipe), train_command(path, overrides))
    return build_app(recipe, os.environ.get(API_KEY_ENV), note)


def url_of(host: str, port: int) -> str:
    """The base URL of a host and port (IPv6 hosts in brackets)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def check_port_free(host: str, port: int) -> None:
    """Fail in one line, before Ray starts, when the local HTTP port is taken (Serve's proxy would only log it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(f"serve.port {port} on {host} cannot be used ({exc.strerror}); "
                             "choose another with serve.port=...") from None


def _start_failure() -> str:
    """The last line (the exception) of each failed deployment's message."""
    app = serve.status().applications.get(APP_NAME)
    causes = [f"{name}: {[ln for ln in d.message.splitlines() if ln.strip()][-1].strip()}"
              for name, d in (app.deployments.items() if app else []) if d.message.strip()]
    return "; ".join(causes) or (app.message if app else "unknown cause")


def run_serve(recipe: Recipe, on_ready: Callable[[str], None], note: str | None = None) -> None:
    """Deploy the recipe's application (``note``: see ``build_app``), call ``on_ready(url)``, and serve until
    SIGTERM or SIGINT.

    Then the application goes down cleanly: on a Ray instance this call started, Serve and Ray are shut down;
    on a cluster it attached to, only this application is deleted.
    """
    cfg = recipe.serve
    if warning := device_warnings(recipe).get("serve"):
        print(f"warning: {warning}", file=sys.stderr)
    app = build_app(recipe, os.environ.get(API_KEY_ENV), note)
    local = not ray.is_initialized() and not (recipe.ray.address or os.environ.get("RAY_ADDRESS"))
    if local:
        check_port_free(cfg.host, cfg.port)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    init_ray(recipe.ray.address, dashboard=recipe.ray.dashboard)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        serve.start(http_options={"host": cfg.host, "port": cfg.port, "request_timeout_s": cfg.request_timeout_s})
        try:
            serve.run(app, name=APP_NAME, route_prefix="/")
        except RuntimeError:  # a replica's constructor failed (its retries spent)
            raise MellmError(f"the application did not start: {_start_failure()}") from None
        on_ready(url_of(cfg.host, cfg.port))
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # The application's replicas finish what they hold and stop; on a local instance, Serve's controller and
        # proxy then stop with Ray. Bounded: when Ray's own processes were signalled too (a process-group kill),
        # the controller cannot answer, and stopping the local Ray instance ends everything regardless.
        stopper = threading.Thread(target=serve.delete, args=(APP_NAME,), daemon=True)
        stopper.start()
        stopper.join(SERVE_SHUTDOWN_S)
        ray.shutdown()
