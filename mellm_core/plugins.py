"""The plugin registry: a typed facade over pluggy that loads entry points, validates params and creates plugins."""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import inspect
import os
import re
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, overload

import pluggy

from mellm_core import hookspecs
from mellm_core.errors import PluginError
from mellm_core.hookspecs import KINDS, PluginSpec
from mellm_core.kinds import (
    Colorizer,
    Dataset,
    FlowEstimator,
    InferenceBackbone,
    Landmarker,
    Metric,
    PromptTemplate,
    Spotter,
)

ENTRY_POINT_GROUP = "mellm"
DISABLE_ENV = "MELLM_DISABLE_PLUGINS"


@dataclass(frozen=True)
class Registered:
    """A plugin spec with where it came from."""

    kind: str
    spec: PluginSpec
    module: str
    distribution: str | None

    @property
    def name(self) -> str:
        return self.spec.name


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _choices(kind: str, names: list[str]) -> str:
    if not names:
        return f"no {kind} plugins are installed"
    return "choose one of: " + ", ".join(sorted(names))


def disabled_from_env() -> set[str]:
    """Plugins blocked by ``MELLM_DISABLE_PLUGINS`` as ``kind.name`` keys (comma separated)."""
    raw = os.environ.get(DISABLE_ENV, "")
    return {item.strip() for item in raw.split(",") if item.strip()}


class _Creates:
    """``create(kind, name, **params)``: a plugin instance with validated params, typed by kind
    (``mellm_core.kinds``); subclasses say where the plugins come from (``_create``)."""

    @overload
    def create(self, kind: Literal["flow"], name: str, **params: Any) -> FlowEstimator: ...
    @overload
    def create(self, kind: Literal["landmarker"], name: str, **params: Any) -> Landmarker: ...
    @overload
    def create(self, kind: Literal["colorizer"], name: str, **params: Any) -> Colorizer: ...
    @overload
    def create(self, kind: Literal["prompt"], name: str, **params: Any) -> PromptTemplate: ...
    @overload
    def create(self, kind: Literal["backbone"], name: str, **params: Any) -> InferenceBackbone: ...
    @overload
    def create(self, kind: Literal["metric"], name: str, **params: Any) -> Metric: ...
    @overload
    def create(self, kind: Literal["dataset"], name: str, **params: Any) -> Dataset: ...
    @overload
    def create(self, kind: Literal["spotter"], name: str, **params: Any) -> Spotter: ...
    @overload
    def create(self, kind: str, name: str, **params: Any) -> Any: ...

    def create(self, kind: str, name: str, **params: Any) -> Any:
        return self._create(kind, name, params)

    def _create(self, kind: str, name: str, params: dict[str, Any]) -> Any:
        raise NotImplementedError


class Registry(_Creates):
    """All plugins of all kinds, with checks: unknown names, duplicate names, misspelt params.

    Entry points load one kind at a time, when that kind is first asked for: one named ``KIND.NAME`` (as the
    shipped ones are) loads with its kind, any other name with every kind. So ``mellm score`` imports the metric
    plugins only, and no command imports a backbone's modules before it asks for a backbone.
    """

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs.Hooks)
        self.disabled = disabled_from_env()
        self.load_errors: list[str] = []
        self._dists: dict[int, str] = {}
        self._cache: dict[str, dict[str, Registered]] = {}
        self._unloaded = set(KINDS) if load_entry_points else set()
        self._entry_points: list[importlib.metadata.EntryPoint] | None = None

    def _load_entry_points(self, kind: str) -> None:
        """Import the entry points that may hold plugins of ``kind`` (once per kind)."""
        if kind not in self._unloaded:
            return
        self._unloaded.discard(kind)
        if self._entry_points is None:  # listed once: a scan of the installed distributions
            self._entry_points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        for ep in self._entry_points:
            prefix = ep.name.split(".", 1)[0]
            if (prefix in KINDS and prefix != kind) or ep.name in self.disabled or self.pm.has_plugin(ep.name):
                continue
            dist = ep.dist.name if ep.dist is not None else None
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not take the tool down
                self.load_errors.append(
                    f"plugin entry point '{ep.name}' ({ep.value}, distribution {dist}) failed to import: {exc}"
                )
                continue
            self.register(module, name=ep.name, distribution=dist)

    def register(self, plugin: ModuleType | object, name: str | None = None, distribution: str | None = None) -> None:
        """Register a module or object that implements one or more ``mellm_<kind>`` hooks."""
        self.pm.register(plugin, name=name)
        self.pm.check_pending()
        self._dists[id(plugin)] = distribution or ""
        self._cache = {}

    def unregister(self, plugin: ModuleType | object) -> None:
        self.pm.unregister(plugin)
        self._cache = {}

    def _collect(self, kind: str) -> dict[str, Registered]:
        found: dict[str, Registered] = {}
        for impl in getattr(self.pm.hook, f"mellm_{kind}").get_hookimpls():
            source = impl.plugin
            module = getattr(source, "__name__", type(source).__module__)
            try:
                specs = list(impl.function() or ())
            except Exception as exc:  # a plugin whose hook fails must not take the others down
                self.load_errors.append(f"{kind} hook of {module} failed: {type(exc).__name__}: {exc}")
                continue
            for spec in specs:
                if f"{kind}.{spec.name}" in self.disabled:
                    continue
                entry = Registered(kind, spec, module, self._dists.get(id(source)) or None)
                previous = found.get(spec.name)
                if previous is not None:
                    raise PluginError(
                        f"two {kind} plugins are named '{spec.name}': one from {previous.module}"
                        f" ({previous.distribution or 'not installed'}) and one from {entry.module}"
                        f" ({entry.distribution or 'not installed'}); disable one with"
                        f" {DISABLE_ENV}={kind}.{spec.name} and rename the other"
                    )
                found[spec.name] = entry
        return found

    def entries(self, kind: str) -> dict[str, Registered]:
        """name -> Registered for one kind, loading that kind's entry points first."""
        self._check_kind(kind)
        self._load_entry_points(kind)
        if kind not in self._cache:
            self._cache[kind] = self._collect(kind)
        return self._cache[kind]

    def table(self) -> dict[str, dict[str, Registered]]:
        """kind -> name -> Registered, for every kind (empty kinds included); loads every kind."""
        return {kind: self.entries(kind) for kind in KINDS}

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries(kind))

    def _check_kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise PluginError(f"unknown plugin kind '{kind}'{_suggest(kind, list(KINDS))} (kinds: {', '.join(KINDS)})")

    def get(self, kind: str, name: str) -> Registered:
        """The registered plugin, or an error listing the names available for that kind."""
        entries = self.entries(kind)
        if name not in entries:
            names = sorted(entries)
            raise PluginError(f"unknown {kind} plugin '{name}'{_suggest(name, names)} ({_choices(kind, names)})")
        return entries[name]

    def params(self, kind: str, name: str, params: dict[str, Any] | None = None) -> Any:
        """Validate ``params`` against the plugin's params dataclass and return an instance of it."""
        entry = self.get(kind, name)
        params = dict(params or {})
        cls = entry.spec.params
        if cls is None:
            if params:
                raise PluginError(f"{kind} plugin '{name}' takes no parameters, got: {', '.join(sorted(params))}")
            return None
        return build_params(cls, params, f"{kind} plugin '{name}'")

    def _create(self, kind: str, name: str, params: dict[str, Any]) -> Any:
        entry = self.get(kind, name)
        values = self.params(kind, name, params)
        return entry.spec.factory() if values is None else entry.spec.factory(values)


def build_params(cls: type, params: dict[str, Any], owner: str) -> Any:
    """Instantiate the params dataclass ``cls`` from a dict, naming unknown keys (with a suggestion) and bad types."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in params if key not in fields]
    if unknown:
        key = unknown[0]
        raise PluginError(
            f"unknown parameter '{key}' for {owner}{_suggest(key, fields)} (parameters: {', '.join(fields)})"
        )
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), params)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        expected = {f.name: f.type for f in dataclasses.fields(cls)}.get(str(key).split(".")[0], "?")
        expected = getattr(expected, "__name__", expected)
        raise PluginError(
            f"parameter '{key}' of {owner} expects {expected}, got {params.get(str(key))!r}"
        ) from None
    except ValueError as exc:  # raised by a params dataclass's own __post_init__ checks
        raise PluginError(f"{owner}: {exc}") from None


_registry: Registry | None = None
_lock = threading.Lock()


@dataclass(frozen=True)
class ParamDoc:
    """One plugin parameter as ``mellm plugins --params`` shows it."""

    name: str
    type: str
    default: Any
    help: str


_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$")
_COMMENT_LINE = re.compile(r"^\s+#\s?(.*)$")


def describe_params(cls: type | None) -> list[ParamDoc]:
    """A params dataclass's fields with type, default and help (the comment after the field, and any comment
    lines under it), read from its source and its base dataclasses' (a field redefined below wins): the one place
    a plugin author documents a setting."""
    if cls is None:
        return []
    helps: dict[str, list[str]] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        last = None  # the field whose definition (possibly over several lines) or help comment is being read
        for line in inspect.getsource(klass).splitlines()[1:]:
            field_match, comment = _FIELD_LINE.match(line), _COMMENT_LINE.match(line)
            if comment and last:
                helps[last].append(comment.group(1).strip())
            elif field_match and not line.lstrip().startswith(("def ", "@")):
                last = field_match.group(1)
                helps[last] = [field_match.group(2).strip()] if field_match.group(2) else []
            elif last and (line.startswith(" " * 8) or line.lstrip().startswith(")")):  # a multi-line definition
                if "#" in line:
                    helps[last].append(line.split("#", 1)[1].strip())
            else:
                last = None
    docs = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        default = None if default is dataclasses.MISSING else default
        docs.append(ParamDoc(f.name, str(f.type), default, " ".join(helps.get(f.name, []))))
    return docs


def get_registry() -> Registry:
    """The process-wide registry, loading entry points on first use."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = Registry()
        return _registry


def reset_registry() -> None:
    """Forget the process-wide registry (the next ``get_registry`` reloads entry points and the environment)."""
    global _registry
    with _lock:
        _registry = None


class _SharedRegistry(_Creates):
    """Creates plugins with the process-wide registry (``get_registry``), looked up at each call."""

    def _create(self, kind: str, name: str, params: dict[str, Any]) -> Any:
        return get_registry()._create(kind, name, params)


create = _SharedRegistry().create
"""Create a plugin instance with the shared registry: ``create("flow", "tvl1", tau=0.25)``, typed by kind."""
