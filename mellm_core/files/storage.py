"""Files under a local folder or a cloud URI (``s3://``, ``gs://``, ``abfs://``, ``hdfs://``).

Stages name what they read and write with ``Location`` so that ``output_dir`` may be a shared path or a bucket:
map workers on any node write maps straight into it and every later stage reads them back the same way. URIs go
through pyarrow filesystems, configured by the usual environment (credentials, ``AWS_ENDPOINT_URL``), not by
query parameters; ``file://`` URIs are local paths.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.fs as pafs

from mellm_core.errors import InputError
from mellm_core.files.atomic import built_once, built_then_swapped, write_bytes_atomic

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_BROKEN_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/(?!/)")  # "s3:/bucket": a URI that lost a slash


def is_uri(path: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (a Windows drive letter or a plain path is not a URI)."""
    return bool(_URI.match(os.fspath(path)))


@functools.cache
def _filesystem(prefix: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``scheme://authority`` and that authority's path inside it, built and checked once per
    process: a missing bucket or refused credentials are named here, not as a failure of every file."""
    try:
        fs, base = pafs.FileSystem.from_uri(prefix + "/")
        found = fs.get_file_info(base).type != pafs.FileType.NotFound
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot open {prefix}: {exc}") from None
    if not found:
        raise InputError(f"{prefix} does not exist (or these credentials cannot see it): create it first")
    return fs, base


class Location:
    """A file or folder path, local or a URI, joined with ``/`` like ``pathlib.Path``.

    Local paths are kept relative or absolute as given (normalised by ``pathlib``); URIs are read and written
    through pyarrow.
    """

    __slots__ = ("_text",)
    _text: str

    def __init__(self, path: str | os.PathLike | Location):
        if isinstance(path, Location):
            self._text = path._text
            return
        text = os.fspath(path)
        if not text:
            raise InputError("an empty path was given where a file or folder is expected")
        if text.startswith("file://"):
            text = text[len("file://"):] or "/"
        elif is_uri(text):
            scheme, rest = text.split("://", 1)
            if "?" in rest:
                raise InputError(f"{text}: query parameters in URIs are not supported; configure the filesystem "
                                 "through the environment (AWS_ENDPOINT_URL, AWS_* or GOOGLE_* variables)")
            if not rest.strip("/"):
                raise InputError(f"{text} names no bucket or host")
            self._text = f"{scheme}://{rest.rstrip('/')}"
            return
        elif _BROKEN_URI.match(text):
            raise InputError(f"{text} looks like a URI with a slash missing after the scheme (e.g. s3://bucket/...)")
        self._text = str(Path(text))

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Location({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    def __truediv__(self, part: str) -> Location:
        if self.remote:
            return Location(f"{self._text}/{part.strip('/')}")
        return Location(Path(self._text) / part)

    @property
    def remote(self) -> bool:
        return is_uri(self._text)

    @property
    def name(self) -> str:
        return self._text.rsplit("/", 1)[-1] if self.remote else Path(self._text).name

    @property
    def parent(self) -> Location:
        if self.remote:
            scheme, rest = self._text.split("://", 1)
            return Location(f"{scheme}://{rest.rsplit('/', 1)[0]}") if "/" in rest else self
        return Location(Path(self._text).parent)

    @property
    def path(self) -> Path:
        """The local path; a URI has none."""
        if self.remote:
            raise InputError(f"{self._text} is a URI; this needs a local or shared-filesystem path")
        return Path(self._text)

    def resolve(self) -> Location:
        """An absolute local path (URIs are absolute already)."""
        return self if self.remote else Location(Path(self._text).resolve())

    def _fs(self) -> tuple[pafs.FileSystem, str]:
        if not self.remote:
            return pafs.LocalFileSystem(), str(Path(self._text).resolve())
        scheme, rest = self._text.split("://", 1)
        authority, _, key = rest.partition("/")
        fs, base = _filesystem(f"{scheme}://{authority}")
        return fs, f"{base.rstrip('/')}/{key}" if key else base

    def _type(self) -> pafs.FileType:
        if not self.remote:
            path = Path(self._text)
            return pafs.FileType.File if path.is_file() else (
                pafs.FileType.Directory if path.is_dir() else pafs.FileType.NotFound)
        fs, inner = self._fs()
        return fs.get_file_info(inner).type

    def exists(self) -> bool:
        return self._type() != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._type() == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._type() == pafs.FileType.Directory

    def stat(self) -> tuple[int, int] | None:
        """(size, modification time in ns), or None when nothing is there."""
        if not self.remote:
            try:
                st = os.stat(self._text)
            except OSError:
                return None
            return st.st_size, st.st_mtime_ns
        fs, inner = self._fs()
        info = fs.get_file_info(inner)
        return None if info.type == pafs.FileType.NotFound else (info.size or 0, info.mtime_ns or 0)

    def read_bytes(self) -> bytes:
        """The file's bytes; ``FileNotFoundError`` when it is absent."""
        if not self.remote:
            return Path(self._text).read_bytes()
        fs, inner = self._fs()
        try:
            with fs.open_input_stream(inner) as stream:
                return stream.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self._text} does not exist") from None

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        """Write a local file atomically (a temporary file and a rename); an object of an object store (S3, GCS,
        Azure) appears whole when written, and other filesystems (HDFS) are written in place."""
        if not self.remote:
            write_bytes_atomic(self._text, data)
            return
        fs, inner = self._fs()
        if not _object_store(fs):
            fs.create_dir(inner.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(inner) as stream:
            stream.write(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def mkdir(self) -> None:
        """Create the folder (object stores have no folders: nothing to do there)."""
        if not self.remote:
            Path(self._text).mkdir(parents=True, exist_ok=True)
            return
        fs, inner = self._fs()
        if not _object_store(fs):
            fs.create_dir(inner, recursive=True)

    def unlink(self) -> None:
        """Remove a file if it is there."""
        if not self.remote:
            Path(self._text).unlink(missing_ok=True)
            return
        fs, inner = self._fs()
        if fs.get_file_info(inner).type == pafs.FileType.File:
            fs.delete_file(inner)

    def rmtree(self) -> None:
        """Remove a folder and everything under it, if it is there."""
        if not self.remote:
            shutil.rmtree(self._text, ignore_errors=True)
            return
        fs, inner = self._fs()
        if fs.get_file_info(inner).type == pafs.FileType.Directory:
            fs.delete_dir(inner)

    def files(self) -> dict[str, tuple[int, int]]:
        """Every file under this folder (recursively) by relative path, with (size, mtime in ns); {} if absent."""
        fs, inner = self._fs()
        if fs.get_file_info(inner).type != pafs.FileType.Directory:
            return {}
        infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
        return {info.path[len(inner):].lstrip("/"): (info.size or 0, info.mtime_ns or 0)
                for info in infos if info.type == pafs.FileType.File}

    def copy_from(self, source: Location) -> None:
        """Make this folder a copy of the ``source`` folder (what was here before is removed first)."""
        self.rmtree()
        self.mkdir()
        src_fs, src = source._fs()
        dst_fs, dst = self._fs()
        pafs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs)


def _object_store(fs: pafs.FileSystem) -> bool:
    return fs.type_name in ("s3", "gcs", "abfs")


def cache_dir() -> Path:
    """Where built and fetched artefacts live: ``$MELLM_CACHE`` or ``~/.cache/mellm``."""
    return Path(os.environ.get("MELLM_CACHE") or Path.home() / ".cache" / "mellm").expanduser()


def local_folder(folder: str | Location, prepare: Callable[[Path, Path], None] | None = None) -> Path:
    """A local path for a folder: itself when local, else a cached copy, fetched again when the remote changed.

    Model loaders (transformers, peft) read local folders; a trained adapter or base model under a URI is fetched
    once per version (names, sizes and modification times of its files), under a lock that other processes of
    the node wait on. ``prepare(fetched, final_path)`` adjusts a fresh copy before anyone can see it.
    """
    location = Location(folder)
    if not location.remote:
        return location.path
    listing = location.files()
    if not listing:
        raise InputError(f"{location} holds no files")
    version = hashlib.sha256(json.dumps(sorted(listing.items())).encode()).hexdigest()
    target = cache_dir() / "fetched" / hashlib.sha256(str(location).encode()).hexdigest()[:16]
    stamp = ".mellm-fetched"

    def fetch(staging: Path) -> None:
        Location(staging).copy_from(location)
        if prepare:
            prepare(staging, target)
        (staging / stamp).write_text(version)

    return built_once(target, lambda t: (t / stamp).is_file() and (t / stamp).read_text() == version, fetch)


def replace_folder(target: Path, source: Location, prepare: Callable[[Path, Path], None] | None = None) -> None:
    """Make the local folder ``target`` a copy of ``source``: built beside it, adjusted by
    ``prepare(copy, target)``, then swapped in; the old folder is set aside, not deleted under a reader."""
    with built_then_swapped(target) as staging:
        Location(staging).copy_from(source)
        if prepare:
            prepare(staging, target)


def model_folder(name: str) -> str:
    """What a backbone loads: a model under a URI as its local copy; a local path or hub id as given."""
    return str(local_folder(name)) if is_uri(name) else name


class Journal:
    """Lines a long run appends as it goes, so that a stopped run can resume from them.

    A local journal is one file, appended and flushed on every write: a killed run loses nothing. Object stores
    cannot append, so there the lines go into numbered part objects (``<name>.parts/00001``...), one at most every
    ``every`` seconds and one at each ``flush()`` (which runs end with, also when they fail): a killed run loses
    at most the last ``every`` seconds.
    """

    def __init__(self, location: Location, every: float = 10.0):
        self.location = location
        self.parts = Location(f"{location}.parts")
        self.every = every
        self._pending: list[str] = []
        self._last = time.monotonic()
        self._next = max(self._numbers(), default=0) + 1 if location.remote else 0
        self._repaired = False

    def _numbers(self) -> list[int]:
        """The numbers of the part objects present, in order (anything else in the folder is ignored)."""
        return sorted(int(name) for name in self.parts.files() if name.isdigit())

    def lines(self) -> list[str]:
        """Every whole line written so far (by this run or an earlier one), in order: a line a killed run left
        cut short, even inside a multi-byte character, is not one."""
        if not self.location.remote:
            data = self.location.read_bytes() if self.location.is_file() else b""
            return data[:_whole_lines(data)].decode("utf-8", "replace").splitlines()
        out: list[str] = []
        for number in self._numbers():
            out.extend((self.parts / f"{number:05d}").read_text().splitlines())
        return out + self._pending

    def append(self, lines: list[str]) -> None:
        if not self.location.remote:
            path = self._text_path()
            with open(path, "ab") as sink:
                if not self._repaired:  # drop a line cut short by a killed run, so this one starts a new line
                    sink.truncate(_whole_lines(path.read_bytes()))
                    self._repaired = True
                sink.write("".join(line + "\n" for line in lines).encode("utf-8"))
            return
        self._pending.extend(lines)
        if time.monotonic() - self._last >= self.every:
            self.flush()

    def flush(self) -> None:
        """Write what is pending as the next part (object stores only; a local journal is always flushed)."""
        if self._pending:
            (self.parts / f"{self._next:05d}").write_text("".join(line + "\n" for line in self._pending))
            self._next += 1
            self._pending = []
        self._last = time.monotonic()

    def remove(self) -> None:
        """Forget every line."""
        self._pending = []
        if self.location.remote:
            self.parts.rmtree()
            self._next = 1
        else:
            self.location.unlink()

    def _text_path(self) -> Path:
        path = self.location.path
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def _whole_lines(data: bytes) -> int:
    """The length of the whole lines at the start of ``data`` (a line cut short at its end is not one)."""
    return data.rfind(b"\n") + 1
