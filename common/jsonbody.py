"""Parse untrusted JSON request bodies safely.

Every API decodes bodies strictly as UTF-8 (``json.loads`` on bytes would let
invalid UTF-8 through as lone surrogates), bounds nesting depth (deep nesting
would raise RecursionError inside the parser) and rejects strings holding lone
surrogates (a JSON escape of one), which no database or encoder can store.
"""

from __future__ import annotations

import json
from typing import Any

#: How deeply a request body may nest; real API bodies need fewer than ten levels.
MAX_DEPTH = 32


class JSONBodyError(ValueError):
    """The body is not acceptable JSON; the message says why, in one line."""


def parse_json(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Return the parsed document or raise :class:`JSONBodyError`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONBodyError("Invalid UTF-8 in request body") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise JSONBodyError("Malformed JSON: nested too deeply") from None
    except ValueError:
        raise JSONBodyError("Malformed JSON") from None
    check_document(doc, max_depth)
    return doc


def _reject_constant(name: str) -> Any:
    raise JSONBodyError(f"Malformed JSON: {name} is not a JSON number")


def check_document(doc: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise JSONBodyError if ``doc`` nests too deeply or holds unencodable strings."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise JSONBodyError("Malformed JSON: nested too deeply")
        if isinstance(value, dict):
            stack.extend((k, depth + 1) for k in value)
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise JSONBodyError("Invalid UTF-8 in request body") from None
