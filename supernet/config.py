"""Typed configuration: dataclasses inside, YAML only at the edge.

``load_config(cls, path_or_dict)`` builds a (nested) dataclass from YAML and rejects unknown or
ill-typed fields with a :class:`ConfigError` that names the file, the field and the fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

__all__ = ["ConfigError", "load_config", "from_dict", "to_dict", "config_hash", "load_yaml", "merge_dicts",
           "apply_override", "merged_config"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass an existing YAML file (see configs/)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of field: value, got {type(data).__name__}")
    return data


def merge_dicts(base: dict, extra: dict) -> dict:
    """``base`` updated by ``extra``: mappings merge key by key, anything else in ``extra`` wins
    (the rule of several ``-c`` files, as LightningCLI). Neither input is modified."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge_dicts(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_override(data: dict, item: str) -> dict:
    """``data`` with one command-line override ``key.sub=value`` applied (the value read as YAML:
    ``5``, ``null``, ``[a, b]``)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} must look like key.sub=value (e.g. trainer.max_steps=20)")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({e})") from None
    nested: Any = value
    for part in reversed(key.strip().split(".")):
        nested = {part: nested}
    return merge_dicts(data, nested)


def merged_config(configs: Sequence[str | Path], overrides: Sequence[str] = (),
                  out: str | Path | None = None) -> tuple[dict, str]:
    """The raw config of ``supernet fit``-style command lines, and where it came from.

    The YAML ``configs`` merge in order (:func:`merge_dicts`), then each ``key.sub=value`` of
    ``overrides`` applies (:func:`apply_override`), then ``out`` (if given) sets ``out_dir``.

    Returns:
        (data, where): the merged dict, and "a.yaml + b.yaml (overrides: k=v ...)" for messages.
    """
    data: dict = {}
    for path in configs:
        data = merge_dicts(data, load_yaml(path))
    for item in overrides:
        data = apply_override(data, item)
    if out is not None:
        data["out_dir"] = str(out)
    where = " + ".join(str(c) for c in configs) if configs else "<defaults>"
    if overrides:
        where += f" (overrides: {' '.join(overrides)})"
    return data, where


def load_config(cls: type[T], source: str | Path | dict | None = None, **overrides: Any) -> T:
    """Build dataclass ``cls`` from a YAML file or a dict, then apply keyword overrides."""
    where = str(source) if isinstance(source, (str, Path)) else "<config>"
    data = load_yaml(source) if isinstance(source, (str, Path)) else dict(source or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(cls, data, where=where)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, where: str, field: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where, field)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[-1] if errors else f"{where}: field '{field}': bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: field '{field}' is {value!r}; allowed values: {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: field '{field}' must be a mapping for {_type_name(tp)}, got {value!r}")
        return from_dict(tp, value, where=where, prefix=f"{field}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: field '{field}' must be a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where, f"{field}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{where}: field '{field}' needs {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, where, f"{field}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        out = [_convert(inner, v, where, f"{field}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: field '{field}' must be a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_convert(kt, k, where, field): _convert(vt, v, where, f"{field}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: field '{field}' must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: field '{field}' must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: field '{field}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: field '{field}' must be a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: field '{field}' must be a path, got {value!r}")
        return Path(value)
    return value


def from_dict(cls: type[T], data: dict, where: str = "<config>", prefix: str = "") -> T:
    """Recursively build dataclass ``cls`` from ``data``; unknown keys are errors, not ignored."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(prefix + u for u in unknown)} for {cls.__name__}; "
            f"known fields: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], where, prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: required field '{prefix + name}' is missing for {cls.__name__}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # __post_init__ validation
        raise ConfigError(f"{where}: {prefix.rstrip('.') or cls.__name__}: {e}") from e


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain YAML/JSON-able structure (paths as strings, tuples as lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def check_minutes(cfg: Any, *names: str) -> None:
    """Raise ValueError unless each wall-clock field ``names`` of ``cfg`` is null or > 0."""
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0 (or null), got {value}")


# Field metadata of an option added after caches were keyed: at its default it is left out of
# config_hash, so that turning nothing on keeps every existing key (e.g. rank-check references
# that took GPU hours). Use: field(default=..., metadata=NEW_OPTION).
NEW_OPTION = {"hash_omit_default": True}


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def hash_view(obj: Any) -> Any:
    """:func:`to_dict` of ``obj`` without the :data:`NEW_OPTION` fields that hold their default."""
    if dataclasses.is_dataclass(obj):
        return {f.name: hash_view(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.metadata.get("hash_omit_default") and to_dict(getattr(obj, f.name)) == to_dict(_default(f)))}
    if isinstance(obj, (list, tuple)):
        return [hash_view(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): hash_view(v) for k, v in obj.items()}
    return to_dict(obj)


def config_hash(obj: Any) -> str:
    """Stable short hash of a config (dataclass or dict): keys caches and stage outputs.

    Options marked :data:`NEW_OPTION` are left out while they hold their default.
    """
    blob = json.dumps(hash_view(obj), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
