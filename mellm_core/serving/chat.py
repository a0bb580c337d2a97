"""The OpenAI chat-completions format of ``POST /v1/chat/completions``: request checks and the answer's shape.

Pure functions (no Ray, no web framework), like ``mellm_core.serving.upload``: every problem is a ``RequestError`` with
its 4xx status. The image travels inside the request as a ``data:image/png;base64,...`` URL; nothing is fetched.
A model that reads text only (the flow-as-text path) takes the question alone, with the flow described in it.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from mellm_core.records import IMAGE_TAG
from mellm_core.serving.upload import RequestError, image_size

JSON_TYPE = "application/json"
DATA_URL_TYPES = ("image/png", "image/jpeg")


@dataclass
class ChatRequest:
    """What the model is asked: the prompt (beginning with ``<image>``) and the image's bytes, or for a model that
    reads text only the prompt alone (image None); and the answer cap."""

    model: str
    prompt: str
    image: bytes | None
    max_tokens: int | None


def check_json_type(content_type: str | None) -> None:
    """Only ``application/json`` bodies are read (415 otherwise)."""
    if (content_type or "").split(";", 1)[0].strip().lower() != JSON_TYPE:
        raise RequestError(415, f"Content-Type '{content_type or '(none)'}' is not accepted: send {JSON_TYPE}")


def read_json(body: bytes) -> Any:
    """The body's JSON; anything Python's parser chokes on is 400: bad syntax or encoding, nesting past the
    recursion limit, integers past Python's digit limit, and text with lone UTF-16 surrogates (valid JSON, but
    not Unicode that can be tokenized or answered)."""
    try:
        data = json.loads(body)
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate anywhere
    except RecursionError:
        raise RequestError(400, "the body is not valid JSON (nested too deeply)") from None
    except UnicodeEncodeError:
        raise RequestError(400, "the body is not valid JSON text: it holds a lone UTF-16 surrogate "
                                "(an unpaired \\ud800-\\udfff escape)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of thousands of digits
        raise RequestError(400, f"the body is not valid JSON ({exc})") from None
    return data


def _image_bytes(url: Any) -> bytes:
    """The bytes of a base64 ``data:`` URL of a PNG or JPEG image; any other URL is refused, never fetched."""
    if not isinstance(url, str) or not url.startswith("data:"):
        shown = url[:60] if isinstance(url, str) else type(url).__name__
        raise RequestError(400, f"image_url '{shown}' is not a data URL: send data:image/png;base64,... "
                                "(the server fetches nothing)")
    head, comma, payload = url.partition(",")
    media, _, encoding = head[5:].partition(";")
    if not comma or encoding != "base64" or media not in DATA_URL_TYPES:
        raise RequestError(400, f"image_url '{head[:60]}' is not a base64 PNG or JPEG data URL: "
                                "send data:image/png;base64,...")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, "image_url holds invalid base64 data") from None


def _user_parts(messages: Any) -> tuple[str, list[Any]]:
    """The text (parts joined by newlines) and the image URLs of the last user message."""
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages must be a non-empty list of {role, content} objects")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise RequestError(400, "messages hold no message with role 'user'")
    content = users[-1].get("content")
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise RequestError(400, "the user message's content must be a string or a list of parts")
    texts, urls = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image_url = part.get("image_url")
            urls.append(image_url.get("url") if isinstance(image_url, dict) else image_url)
        else:
            raise RequestError(400, f"content part {json.dumps(part)[:80]} is neither a text nor an image_url part")
    return "\n".join(texts), urls


def _max_tokens(body: dict[str, Any], cap: int | None) -> int | None:
    """The requested answer cap, lowered to the server's ``serve.max_new_tokens`` when that is smaller."""
    value = body.get("max_tokens", body.get("max_completion_tokens"))
    if value is None:
        return cap
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(400, f"max_tokens {value!r} is not a positive whole number")
    return value if cap is None else min(value, cap)


def parse_chat(body: bytes, served: str, cap: int | None, max_pixels: int, max_chars: int,
               text_only: bool = False) -> ChatRequest:
    """A chat-completions request checked: JSON, the served model, one image as a data URL (none for a model that
    reads ``text_only``), the numbers (answers are greedy: temperature is checked, not used)."""
    data = read_json(body)
    if not isinstance(data, dict):
        raise RequestError(400, "the body must be a JSON object with model and messages")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, f"model is missing: send \"model\": \"{served}\"")
    if model != served:
        raise RequestError(404, f"model '{model}' is not served here; GET /v1/models lists '{served}'")
    if data.get("stream"):
        raise RequestError(400, "stream is not supported: send \"stream\": false")
    if data.get("n", 1) != 1:
        raise RequestError(400, f"n {data.get('n')!r} is not supported: one answer per request (n = 1)")
    temperature = data.get("temperature", 0)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        raise RequestError(400, f"temperature {temperature!r} is not a number from 0 to 2")
    text, urls = _user_parts(data.get("messages"))
    if len(text) > max_chars:
        raise RequestError(413, f"the question is {len(text)} characters, over the limit of {max_chars} "
                                "(serve.max_prompt_chars)")
    question = text.replace(IMAGE_TAG, "")
    if text_only:
        if urls:
            raise RequestError(400, f"model '{served}' reads text only: send no image_url part, and describe the "
                                    "flow in the question (as the flow-text prompt does)")
        if not question.strip():
            raise RequestError(400, "the user message holds no text: send the question")
        return ChatRequest(model, question, None, _max_tokens(data, cap))
    if len(urls) != 1:
        raise RequestError(400, f"the user message holds {len(urls)} images: send exactly one image_url part "
                                "(the MMC-map)")
    image = _image_bytes(urls[0])
    image_size(image, "image_url", max_pixels)
    return ChatRequest(model, IMAGE_TAG + question, image, _max_tokens(data, cap))


def completion(model: str, text: str) -> dict[str, Any]:
    """The answer in the chat-completions shape (the backbones count no tokens: usage holds nulls)."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},
    }


def model_list(model: str) -> dict[str, Any]:
    """``GET /v1/models``: the one model this server answers with."""
    return {"object": "list", "data": [{"id": model, "object": "model", "created": 0, "owned_by": "mellm"}]}
