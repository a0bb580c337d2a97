"""Checks on HTTP uploads before any pixel is decoded: body size, the multipart form, image and video headers, the
API key.

Pure functions (no Ray, no web framework), so the server's answer to every kind of bad request is testable alone.
Each problem is a ``RequestError`` carrying the HTTP status (4xx) that names it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import warnings
from collections.abc import AsyncIterator
from email.message import Message
from typing import TYPE_CHECKING

from PIL import Image

from mellm_core.errors import MellmError

if TYPE_CHECKING:
    from mellm_core.config import ServeConfig

IMAGE_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG"}  # PIL's names -> what they are (MPO: a phone's
# JPEG with a second picture in its MPF data, decoded as the JPEG it is)
MAX_ASPECT = 200  # longest side over shortest: the vision models' image processors refuse more
MAX_PNG_CHUNKS = 4096  # chunks read to check a PNG is whole (real files hold a few dozen)
MAX_FORM_PARTS = 16  # multipart parts read (a request needs two)
FORM_TYPE = "multipart/form-data"
API_KEY_ENV = "MELLM_API_KEY"  # when set, requests need Authorization: Bearer <key>


class RequestError(MellmError):
    """A client's request is wrong; ``status`` is the HTTP status (4xx) that says how."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def check_content_length(header: str | None, limit: int) -> None:
    """Refuse a declared body over ``limit`` bytes before reading any of it (413); a missing length is allowed."""
    if header is None:
        return
    if not header.strip().isdigit():
        raise RequestError(400, f"Content-Length '{header}' is not a whole number of bytes")
    if int(header) > limit:
        raise RequestError(413, f"request body of {int(header)} bytes is over the limit of {limit} bytes "
                                "(serve.max_body_bytes)")


async def read_body(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, stopping with 413 as soon as it passes ``limit`` bytes (for bodies sent without a length)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body is over the limit of {limit} bytes (serve.max_body_bytes)")
        parts.append(chunk)
    return b"".join(parts)


def _header_param(value: str, header: str, param: str) -> str | None:
    """A parameter of a structured header value, e.g. ``boundary`` of Content-Type (quoting handled)."""
    msg = Message()
    msg[header] = value
    found = msg.get_param(param, header=header)
    return found if isinstance(found, str) else None


def form_boundary(content_type: str | None) -> bytes:
    """The multipart boundary of a ``multipart/form-data`` Content-Type; any other type is 415."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != FORM_TYPE:
        raise RequestError(415, f"Content-Type '{content_type or '(none)'}' is not accepted: send {FORM_TYPE} "
                                "with the files onset and apex")
    boundary = _header_param(content_type or "", "content-type", "boundary")
    if not boundary or len(boundary) > 70:
        raise RequestError(400, f"Content-Type '{content_type}' has no valid multipart boundary")
    return boundary.encode("latin-1", "replace")


def form_fields(body: bytes, content_type: str | None) -> dict[str, bytes]:
    """The fields of a ``multipart/form-data`` body by name; malformed or truncated forms are 400."""
    boundary = form_boundary(content_type)
    if body.count(b"\r\n--" + boundary) > MAX_FORM_PARTS:
        raise RequestError(400, f"the multipart body has over {MAX_FORM_PARTS} parts: send the files onset and apex")
    sections = (b"\r\n" + body).split(b"\r\n--" + boundary)
    if len(sections) < 2 or not sections[-1].startswith(b"--"):
        raise RequestError(400, "the multipart body has no closing boundary (truncated or not multipart)")
    fields: dict[str, bytes] = {}
    for section in sections[1:-1]:
        head, sep, content = section.partition(b"\r\n\r\n")
        padding, _, header_block = head.partition(b"\r\n")
        if not sep or padding.strip(b" \t"):
            raise RequestError(400, "a part of the multipart body is malformed (no blank line after its headers)")
        name = _part_name(header_block)
        if name in fields:
            raise RequestError(400, f"field {name} is given twice")
        fields[name] = content
    return fields


def _part_name(header_block: bytes) -> str:
    for line in header_block.decode("utf-8", "replace").split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-disposition":
            name = _header_param(value.strip(), "content-disposition", "name")
            if name:
                return name
    raise RequestError(400, "a part of the multipart body has no Content-Disposition name")


def require_files(fields: dict[str, bytes], names: tuple[str, ...]) -> list[bytes]:
    """The named fields in order; a missing one is 400."""
    missing = [n for n in names if n not in fields]
    if missing:
        raise RequestError(400, f"missing field {', '.join(missing)}: send the files {' and '.join(names)}")
    return [fields[n] for n in names]


def image_size(data: bytes, field: str, max_pixels: int) -> tuple[int, int]:
    """Width and height read from a PNG or JPEG header, without decoding pixels; refuses what the server would not.

    Empty, unreadable or truncated files are 400, other formats 415, images over ``max_pixels`` 413.
    """
    if not data:
        raise RequestError(400, f"{field} is empty: send a PNG or JPEG file")
    png_complete = _png_complete(data) if data.startswith(b"\x89PNG") else False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (width, height) = img.format, img.size
    except Image.DecompressionBombError:
        raise RequestError(413, f"{field} is over the pixel limit of {max_pixels} (serve.max_pixels)") from None
    except Exception:  # PIL raises many types for hostile bytes; all mean the same thing here
        raise RequestError(400, f"{field} is not a readable image: send a PNG or JPEG file") from None
    if fmt not in IMAGE_FORMATS:
        raise RequestError(415, f"{field} is a {fmt} image: send PNG or JPEG")
    fmt = IMAGE_FORMATS[fmt]
    if width * height > max_pixels:
        raise RequestError(413, f"{field} is {width}x{height} = {width * height} pixels, over the limit of "
                                f"{max_pixels} (serve.max_pixels)")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise RequestError(400, f"{field} is {width}x{height}: one side is over {MAX_ASPECT} times the other, "
                                "more than the model's image processor takes")
    complete = png_complete if fmt == "PNG" else _jpeg_complete(data)
    if not complete:
        raise RequestError(400, f"{field} is a truncated {fmt} file")
    return width, height


def _png_complete(data: bytes) -> bool:
    """Whether the PNG's chunks run whole up to IEND; a PNG of very many chunks is refused (400) before anything
    (PIL, too) walks them one by one."""
    pos, count = 8, 0
    while pos + 12 <= len(data):
        count += 1
        if count > MAX_PNG_CHUNKS:
            raise RequestError(400, f"a PNG of over {MAX_PNG_CHUNKS} chunks is refused (real images hold a few dozen)")
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            return pos <= len(data)
    return False


def _jpeg_complete(data: bytes) -> bool:
    """Whether an end-of-image marker follows the last scan (entropy-coded data never holds one)."""
    scan = data.rfind(b"\xff\xda")
    return scan >= 0 and data.find(b"\xff\xd9", scan) >= 0


def check_same_size(sizes: list[tuple[int, int]], names: tuple[str, ...]) -> None:
    """Onset and apex must have one size (422 otherwise)."""
    if len(set(sizes)) > 1:
        described = ", ".join(f"{n} {w}x{h}" for n, (w, h) in zip(names, sizes, strict=True))
        raise RequestError(422, f"the frames differ in size ({described}); send frames of one size")


def key_digest(key: str) -> bytes:
    """SHA-256 of an API key: the server keeps and compares digests, never the key itself."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def authorized(header: str | None, digest: bytes | None) -> bool:
    """Whether an Authorization header carries the key (always true when no key is set); constant-time compare."""
    if digest is None:
        return True
    scheme, _, token = (header or "").strip().partition(" ")
    given = key_digest(token.strip())
    return hmac.compare_digest(given, digest) and scheme.lower() == "bearer"


def video_header(data: bytes, cfg: ServeConfig) -> tuple[float, int]:
    """Frame rate and frame count of a video part, read from its container's header before any frame is decoded;
    refuses what the server would not: empty or unreadable bytes, or a rate or count the header does not state
    (400), frames over ``serve.max_pixels``, or a clip over ``serve.max_video_fps``, ``max_video_s``,
    ``max_video_frames`` or ``max_video_pixels`` (413). The last two bound the spotter's work (each frame's flow
    to two others) and the first its memory (it holds 2 ``window_s`` x fps frames)."""
    import math
    import tempfile

    import cv2

    if not data:
        raise RequestError(400, "video is empty: send a video file (mp4, avi, mov)")
    with tempfile.NamedTemporaryFile(suffix=".video") as file:
        file.write(data)
        file.flush()
        capture = cv2.VideoCapture(file.name)
        try:
            if not capture.isOpened():
                raise RequestError(400, "video is not a video the server can read: send mp4, avi or mov")
            fps, count = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        finally:
            capture.release()
    if not math.isfinite(fps) or fps <= 0 or count <= 0 or min(width, height) <= 0:
        raise RequestError(400, "video states no frame rate, frame count or frame size in its header: send mp4, "
                                "avi or mov")
    pixels = width * height
    if pixels > cfg.max_pixels:
        raise RequestError(413, f"video frames are {width}x{height} = {pixels} pixels, over the limit of "
                                f"{cfg.max_pixels} (serve.max_pixels)")
    if fps > cfg.max_video_fps:
        raise RequestError(413, f"video has {fps:g} frames a second, over the limit of {cfg.max_video_fps:g} "
                                "(serve.max_video_fps)")
    if count / fps > cfg.max_video_s:
        raise RequestError(413, f"video lasts {count / fps:.1f} s, over the limit of {cfg.max_video_s:g} s "
                                "(serve.max_video_s)")
    if count > cfg.max_video_frames:
        raise RequestError(413, f"video has {count} frames, over the limit of {cfg.max_video_frames} "
                                "(serve.max_video_frames)")
    if count * pixels > cfg.max_video_pixels:
        raise RequestError(413, f"video is {count} frames of {width}x{height} = {count * pixels} pixels, over the "
                                f"limit of {cfg.max_video_pixels} (serve.max_video_pixels)")
    return float(fps), count
