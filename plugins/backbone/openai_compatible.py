"""A backbone served elsewhere behind the OpenAI chat-completions protocol: compare MELLM with hosted MLLMs.

``generate`` sends each (prompt, MMC-map) to ``{base_url}/chat/completions`` as a user message with the prompt's
text and the map as a ``data:image/png;base64`` URL, ``concurrency`` requests at a time, through ``requests``.
``mellm serve`` answers the same protocol, so a local MELLM and a hosted model are evaluated by the same eval
stage, prompts and parser. Timeouts, connection errors, 429 and 5xx are retried by urllib3's ``Retry`` with
exponential backoff, honouring ``Retry-After``; other 4xx are not. The key never follows a redirect to another
host (``requests`` drops ``Authorization`` there), and an answer is read up to ``max_response_bytes`` only.
Nothing is trained here: ``collate``, ``loss``, ``save`` and ``merge`` refuse.
"""

from __future__ import annotations

import base64
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from mellm_core import PluginSpec, hookimpl
from mellm_core.errors import InputError
from mellm_core.records import IMAGE_TAG

NAME = "openai-compatible"
NOT_TRAINABLE = "the openai-compatible backbone is served elsewhere; it cannot be trained or merged"


@dataclass
class OpenAICompatibleParams:
    base_url: str = "http://127.0.0.1:8000/v1"  # the API root; requests go to {base_url}/chat/completions
    model: str = ""  # model name sent with each request ("" = the recipe's backbone.model)
    api_key_env: str = ""  # environment variable holding the bearer key ("" = send no key)
    concurrency: int = 4  # requests in flight at once within one generate call (a thread pool)
    retries: int = 3  # further attempts after a timeout, a 429 or a 5xx answer
    backoff_s: float = 1.0  # exponential backoff factor between retries (urllib3's; Retry-After wins when sent)
    max_response_bytes: int = 10_000_000  # longest answer body read; a longer one is an error
    timeout_s: float = 120.0  # seconds one request may take before it counts as timed out
    temperature: float = 0.0  # sampling temperature sent with each request (0 = greedy)
    max_tokens: int | None = None  # answer cap when the stage gives none (null = the server's)

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got '{self.base_url}'")
        if (self.concurrency < 1 or self.retries < 0 or self.backoff_s < 0 or self.timeout_s <= 0
                or self.max_response_bytes < 1):
            raise ValueError(f"concurrency and max_response_bytes must be >= 1, retries and backoff_s >= 0 and "
                             f"timeout_s > 0, got {self.concurrency}, {self.max_response_bytes}, {self.retries}, "
                             f"{self.backoff_s}, {self.timeout_s}")


@dataclass
class Endpoint:
    """What ``load`` resolves once: the URL, the model name, the request headers and the HTTP session."""

    url: str
    model: str
    headers: dict[str, str]
    session: requests.Session


RETRIED = (429, 500, 502, 503, 504)  # answers worth another attempt, besides timeouts and connection errors


class _CappedRetry(Retry):
    """urllib3's Retry, with a server's ``Retry-After`` honoured up to ``timeout_s`` (urllib3 allows hours)."""

    cap_s = 120.0

    def get_retry_after(self, response) -> float | None:  # noqa: ANN001 (urllib3's signature)
        wait = super().get_retry_after(response)
        return None if wait is None else min(wait, self.cap_s)

    def new(self, **kw) -> _CappedRetry:  # noqa: ANN003 (urllib3's signature)
        fresh = super().new(**kw)
        fresh.cap_s = self.cap_s
        return fresh


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
        session = requests.Session()
        retry = _CappedRetry(total=self.params.retries, connect=self.params.retries, read=self.params.retries,
                             status=self.params.retries, other=0, allowed_methods=None, status_forcelist=RETRIED,
                             backoff_factor=self.params.backoff_s, backoff_max=self.params.timeout_s,
                             respect_retry_after_header=True, raise_on_status=False)
        retry.cap_s = self.params.timeout_s
        transport = HTTPAdapter(max_retries=retry, pool_maxsize=self.params.concurrency)
        session.mount("http://", transport)
        session.mount("https://", transport)
        return Endpoint(self.params.base_url.rstrip("/") + "/chat/completions", self.params.model or model, headers,
                        session)

    def _body(self, endpoint: Endpoint, prompt: str, image: np.ndarray | None, max_new_tokens: int | None
              ) -> bytes:
        """One request: the prompt's text (without ``<image>``) and the image as a PNG data URL; the text alone
        for a prompt that carries the flow as text (no image)."""
        content: Any = prompt
        if image is not None:
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise InputError(f"image must be an RGB uint8 HxWx3 array, got {image.dtype} {image.shape}")
            png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()
            url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            content = [{"type": "image_url", "image_url": {"url": url}},
                       {"type": "text", "text": prompt.replace(IMAGE_TAG, "")}]
        body: dict[str, Any] = {"model": endpoint.model, "temperature": self.params.temperature,
                                "messages": [{"role": "user", "content": content}]}
        cap = max_new_tokens or self.params.max_tokens
        if cap:
            body["max_tokens"] = cap
        return json.dumps(body).encode("utf-8")

    def _ask(self, endpoint: Endpoint, body: bytes) -> str:
        """The answer's text; every failure that remains after the retries is an ``InputError``. The session
        retries up to an answer's headers; a body cut off while it arrives is asked again here."""
        for _ in range(self.params.retries):
            try:
                return self._once(endpoint, body)
            except _BodyCut:
                continue
        try:
            return self._once(endpoint, body)
        except _BodyCut as exc:
            raise InputError(f"{endpoint.url} kept cutting its answer off ({exc}; after "
                             f"{self.params.retries + 1} attempts)") from None

    def _once(self, endpoint: Endpoint, body: bytes) -> str:
        attempts = f"after {self.params.retries + 1} attempts"
        try:
            with endpoint.session.post(endpoint.url, data=body, headers=endpoint.headers, stream=True,
                                       timeout=self.params.timeout_s) as answer:
                try:
                    raw = self._read(answer, endpoint.url)
                except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError,
                        requests.exceptions.ConnectionError) as exc:
                    raise _BodyCut(str(exc)) from None
                status = answer.status_code
        except requests.exceptions.RetryError as exc:
            raise InputError(f"{endpoint.url} kept failing ({_reason(exc)}; {attempts})") from None
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
            timed_out = isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc).lower()
            problem = f"timed out after {self.params.timeout_s} s" if timed_out else f"could not be reached ({exc})"
            raise InputError(f"{endpoint.url} {problem} ({attempts})") from None
        except requests.exceptions.RequestException as exc:  # too many redirects, a bad URL, ...
            raise InputError(f"{endpoint.url}: {type(exc).__name__}: {exc}") from None
        if status >= 400:
            tail = f" ({attempts})" if status in RETRIED else ""
            raise InputError(f"{endpoint.url} answered HTTP {status}: {_error_text(raw)}{tail}")
        try:
            return str(json.loads(raw)["choices"][0]["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError):
            raise InputError(f"{endpoint.url} answered without choices[0].message.content: "
                             f"{raw[:200].decode('utf-8', 'replace')}") from None

    def _read(self, answer: requests.Response, url: str) -> bytes:
        """The body, refusing one longer than ``max_response_bytes`` without reading the rest."""
        limit, parts, size = self.params.max_response_bytes, [], 0
        for chunk in answer.iter_content(65536):
            size += len(chunk)
            if size > limit:
                raise InputError(f"{url} answered more than {limit} bytes (backbone.params.max_response_bytes)")
            parts.append(chunk)
        return b"".join(parts)

    def generate(self, module: Endpoint, prompts: list[str], images: list[np.ndarray | None],
                 max_new_tokens: int | None = None) -> list[str]:
        """The endpoint's answer to each (prompt, image or None), ``concurrency`` requests at a time."""
        if len(prompts) != len(images):
            raise InputError(f"generate: {len(prompts)} prompts but {len(images)} images")
        bodies = [self._body(module, p, img, max_new_tokens) for p, img in zip(prompts, images, strict=True)]
        with ThreadPoolExecutor(min(self.params.concurrency, max(1, len(bodies)))) as pool:
            return list(pool.map(lambda body: self._ask(module, body), bodies))


class _BodyCut(Exception):
    """The connection broke while the answer's body arrived (worth another attempt)."""


def _reason(exc: requests.exceptions.RetryError) -> str:
    """What urllib3 gave up on, from the error it wraps."""
    inner = exc.args[0] if exc.args else exc
    return str(getattr(inner, "reason", inner))


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
