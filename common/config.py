"""Read TOML configuration into typed frozen dataclasses.

A component declares its section as a frozen dataclass with defaults; the
loader checks every key and value against the field types and reports the first
problem as ``config.toml: [section] key: what is wrong`` (a :class:`ConfigError`).
Parsing happens once, at start-up, never at import time.

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``list[T]``,
``tuple[T, ...]``, ``dict[str, T]``, ``T | None``, ``Literal[...]`` and nested
frozen dataclasses (TOML sub-tables). A field's ``metadata`` may hold a
``check`` callable returning an error string (or ``None``) for range checks.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from nubis.common.errors import ConfigError

T = TypeVar("T")


def check(fn: typing.Callable[[Any], str | None]) -> dict[str, Any]:
    """Return field metadata that runs ``fn`` on the parsed value."""
    return {"check": fn}


def positive(value: Any) -> str | None:
    """Reject zero and negative numbers."""
    return None if value > 0 else "must be > 0"


def non_negative(value: Any) -> str | None:
    """Reject negative numbers."""
    return None if value >= 0 else "must be >= 0"


def port(value: Any) -> str | None:
    """Reject values that are not TCP ports."""
    return None if 0 < value < 65536 else "must be a TCP port (1-65535)"


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning I/O and syntax errors into ConfigError."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p.name}: file not found: {p}") from None
    except OSError as exc:
        raise ConfigError(f"{p.name}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p.name}: invalid TOML: {exc}") from None


def parse_section(cls: type[T], data: Any, section: str, filename: str = "config.toml") -> T:
    """Build dataclass ``cls`` from a TOML table, validating every key."""
    where = f"{filename}: [{section}]"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where} {unknown[0]}: unknown key")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        field = fields[name]
        sub = f"{section}.{name}"
        parsed = _convert(hints[name], value, sub, filename, f"{where} {name}")
        checker = field.metadata.get("check")
        if checker is not None:
            problem = checker(parsed)
            if problem:
                raise ConfigError(f"{where} {name}: {problem} (got {value!r})")
        kwargs[name] = parsed
    missing = [n for n, f in fields.items() if n not in kwargs
               and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where} {missing[0]}: required key missing")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, section: str, filename: str, where: str) -> Any:
    """Check ``value`` against type ``tp`` and convert it (recursively)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        last: ConfigError | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, section, filename, where)
            except ConfigError as exc:
                last = exc
        assert last is not None
        raise last
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where}: must be one of {choices} (got {value!r})")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: must be a list (got {_tname(value)})")
        item_t = args[0] if args else Any
        items = [_convert(item_t, v, section, filename, f"{where}[{i}]")
                 for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: must be a table (got {_tname(value)})")
        val_t = args[1] if len(args) == 2 else Any
        return {str(k): _convert(val_t, v, section, filename, f"{where}.{k}")
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return parse_section(tp, value, section, filename)  # type: ignore[arg-type, type-var]
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false (got {value!r})")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be an integer (got {value!r})")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: must be a number (got {value!r})")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string (got {value!r})")
        return value
    raise ConfigError(f"{where}: unsupported type {tp!r}")


def _tname(value: Any) -> str:
    return type(value).__name__


def parse_document(cls: type[T], data: Mapping[str, Any], filename: str = "config.toml") -> T:
    """Build a top-level config dataclass whose fields are section dataclasses."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError("cls must be a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{filename}: [{unknown[0]}]: unknown section")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = parse_section(tp, value, name, filename)  # type: ignore[arg-type, type-var]
        else:
            kwargs[name] = _convert(tp, value, name, filename, f"{filename}: [{name}]")
    return cls(**kwargs)  # type: ignore[return-value]


def load(cls: type[T], path: str | Path) -> T:
    """Read the TOML file at ``path`` into the top-level config dataclass ``cls``."""
    p = Path(path)
    return parse_document(cls, read_toml(p), p.name)
