"""A backbone served elsewhere behind the OpenAI chat-completions protocol: compare MELLM with hosted MLLMs.

``generate`` sends each (prompt, MMC-map) to ``{base_url}/chat/completions`` as a user message with the prompt's
text and the map as a ``data:image/png;base64`` URL, ``concurrency`` requests at a time, with the Python standard
library only. ``mellm serve`` answers the same protocol, so a local MELLM and a hosted model are evaluated by the
same eval stage, prompts and parser. Timeouts, 429 and 5xx are retried with exponential backoff; other 4xx are not.
Nothing is trained here: ``collate``, ``loss``, ``save`` and ``merge`` refuse.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from mellm_core import PluginSpec, hookimpl
from mellm_core.errors import InputError

NAME = "openai-compatible"
IMAGE_TAG = "<image>"
NOT_TRAINABLE = "the openai-compatible backbone is served elsewhere; it cannot be trained or merged"


@dataclass
class OpenAICompatibleParams:
    base_url: str = "http://127.0.0.1:8000/v1"  # the API root; requests go to {base_url}/chat/completions
    model: str = ""  # model name sent with each request ("" = the recipe's backbone.model)
    api_key_env: str = ""  # environment variable holding the bearer key ("" = send no key)
    concurrency: int = 4  # requests in flight at once within one generate call (a thread pool)
    retries: int = 3  # further attempts after a timeout, a 429 or a 5xx answer
    backoff_s: float = 1.0  # wait before the first retry; doubled before each next one
    timeout_s: float = 120.0  # seconds one request may take before it counts as timed out
    temperature: float = 0.0  # sampling temperature sent with each request (0 = greedy)
    max_tokens: int | None = None  # answer cap when the stage gives none (null = the server's)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got '{self.base_url}'")
        if self.concurrency < 1 or self.retries < 0 or self.backoff_s < 0 or self.timeout_s <= 0:
            raise ValueError(f"concurrency must be >= 1, retries and backoff_s >= 0 and timeout_s > 0, got "
                             f"{self.concurrency}, {self.retries}, {self.backoff_s}, {self.timeout_s}")


@dataclass
class Endpoint:
    """What ``load`` resolves once: the URL, the model name and the request headers."""

    url: str
    model: str
    headers: dict[str, str]


class _Retry(Exception):
    """A failure worth another attempt (timeout, connection error, 429, 5xx)."""


class OpenAICompatible:
    """Generation through an OpenAI-compatible chat-completions endpoint (see the backbone hook's contract)."""

    def __init__(self, params: OpenAICompatibleParams):
        self.params = params

    def load(self, model: str, device: str = "cpu", adapter: str | None = None, train: Any = None,
             labels: tuple[str, ...] | list[str] = ()) -> Endpoint:
        """The endpoint to ask; an adapter or training cannot apply to a model served elsewhere."""
        if train is not None:
            raise InputError(NOT_TRAINABLE)
        if adapter:
            raise InputError(f"adapter {adapter} cannot apply to the openai-compatible backbone (its model is served "
                             "elsewhere): set eval.base_model=true or use another output_dir")
        headers = {"Content-Type": "application/json"}
        if self.params.api_key_env:
            key = os.environ.get(self.params.api_key_env)
            if not key:
                raise InputError(f"environment variable {self.params.api_key_env} (backbone.params.api_key_env) "
                                 "is not set: export the endpoint's key in it")
            headers["Authorization"] = f"Bearer {key}"
        return Endpoint(self.params.base_url.rstrip("/") + "/chat/completions", self.params.model or model, headers)

    def _body(self, endpoint: Endpoint, prompt: str, image: np.ndarray, max_new_tokens: int | None) -> bytes:
        """One request: the prompt's text (without ``<image>``) and the image as a PNG data URL."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"image must be an RGB uint8 HxWx3 array, got {image.dtype} {image.shape}")
        png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()
        url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        body: dict[str, Any] = {
            "model": endpoint.model, "temperature": self.params.temperature,
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                      {"type": "text", "text": prompt.replace(IMAGE_TAG, "")}]}],
        }
        cap = max_new_tokens or self.params.max_tokens
        if cap:
            body["max_tokens"] = cap
        return json.dumps(body).encode("utf-8")

    def _once(self, endpoint: Endpoint, body: bytes) -> str:
        """One attempt: the answer's text; ``_Retry`` for what may pass, ``InputError`` for what will not."""
        request = urllib.request.Request(endpoint.url, data=body, headers=endpoint.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.params.timeout_s) as answer:
                data = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            problem = f"{endpoint.url} answered HTTP {exc.code}: {_error_text(exc.read())}"
            if exc.code == 429 or exc.code >= 500:
                raise _Retry(problem) from None
            raise InputError(problem) from None
        except TimeoutError as exc:
            raise _Retry(f"{endpoint.url} timed out after {self.params.timeout_s} s ({exc})") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Retry(f"{endpoint.url} timed out after {self.params.timeout_s} s") from None
            raise _Retry(f"{endpoint.url} could not be reached ({exc.reason})") from None
        except (json.JSONDecodeError, UnicodeDecodeError, ConnectionError) as exc:
            raise _Retry(f"{endpoint.url} sent an unreadable answer ({exc})") from None
        try:
            return str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise InputError(f"{endpoint.url} answered without choices[0].message.content: "
                             f"{json.dumps(data)[:200]}") from None

    def _ask(self, endpoint: Endpoint, body: bytes) -> str:
        """The answer, retried with exponential backoff; the last failure as ``InputError``."""
        for attempt in range(self.params.retries):
            try:
                return self._once(endpoint, body)
            except _Retry:
                time.sleep(self.params.backoff_s * 2 ** attempt)
        try:
            return self._once(endpoint, body)
        except _Retry as exc:
            raise InputError(f"{exc} (after {self.params.retries + 1} attempts)") from None

    def generate(self, module: Endpoint, prompts: list[str], images: list[np.ndarray],
                 max_new_tokens: int | None = None) -> list[str]:
        """The endpoint's answer to each (prompt, image), ``concurrency`` requests at a time."""
        if len(prompts) != len(images):
            raise InputError(f"generate: {len(prompts)} prompts but {len(images)} images")
        bodies = [self._body(module, p, img, max_new_tokens) for p, img in zip(prompts, images, strict=True)]
        with ThreadPoolExecutor(min(self.params.concurrency, max(1, len(bodies)))) as pool:
            return list(pool.map(lambda body: self._ask(module, body), bodies))

    def collate(self, rows: list[dict]) -> dict:
        """Refused: nothing is trained here."""
        raise InputError(NOT_TRAINABLE)

    def loss(self, module: Endpoint, batch: dict) -> tuple[Any, int]:
        """Refused: nothing is trained here."""
        raise InputError(NOT_TRAINABLE)

    def save(self, module: Endpoint, out_dir: str) -> None:
        """Refused: nothing is trained here."""
        raise InputError(NOT_TRAINABLE)

    def merge(self, module: Endpoint, out_dir: str) -> None:
        """Refused: nothing is trained here."""
        raise InputError(NOT_TRAINABLE)


def _error_text(raw: bytes) -> str:
    """The server's error message: ``{"error": text}``, OpenAI's ``{"error": {"message": text}}``, or the body."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        found = json.loads(text).get("error")
    except (json.JSONDecodeError, AttributeError):
        return text[:300] or "(empty body)"
    if isinstance(found, dict):
        found = found.get("message", found)
    return str(found)[:300]


@hookimpl
def mellm_backbone():
    yield PluginSpec(NAME, OpenAICompatible, OpenAICompatibleParams,
                     "A model behind an OpenAI-compatible chat endpoint (mellm serve, vLLM, hosted APIs): eval only")
