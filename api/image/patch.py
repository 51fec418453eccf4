"""Glance's JSON Patch: parse ``application/openstack-images-v2.1-json-patch`` and apply it.

Pure functions over records (no I/O), so every rule is unit-tested:
:func:`parse_patch` checks the media type, the operation objects, the JSON
pointers and the values (against the image schema); :func:`apply_patch` applies
the changes to an :class:`~nubis.api.image.model.Image` and returns the
:class:`~nubis.api.image.model.ImageUpdate` to store. Errors carry Glance's
status and words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nubis.api.image import jsonschemas as js
from nubis.api.image.errors import UnsupportedMediaTypeError
from nubis.api.image.model import MUTABLE_COLUMNS, Image, ImageUpdate
from nubis.api.shared.errors import BadRequestError, ConflictError, ForbiddenError

#: Media type -> JSON Schema draft it follows (2.0 = draft 4 style, 2.1 = RFC 6902 style).
MEDIA_TYPES = {"application/openstack-images-v2.0-json-patch": 4,
               "application/openstack-images-v2.1-json-patch": 10}
OPERATIONS = ("add", "remove", "replace")
#: Longest free-form property name (Glance's LP #1737952).
MAX_PROPERTY_NAME = 255


@dataclass(frozen=True)
class Change:
    """One parsed operation: ``op`` on the attribute ``path[0]``."""

    op: str
    path: tuple[str, ...]
    value: Any = None
    draft: int = 10

    @property
    def root(self) -> str:
        """Return the attribute the change addresses."""
        return self.path[0]


def parse_patch(content_type: str | None, doc: Any, validator: js.ImageValidator
                ) -> list[Change]:
    """Turn a PATCH body into checked changes (Glance's RequestDeserializer.update)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise UnsupportedMediaTypeError(
            "The request has a media type the server does not accept.",
            {"Accept-Patch": ", ".join(sorted(MEDIA_TYPES))})
    draft = MEDIA_TYPES[media]
    if not isinstance(doc, list):
        raise BadRequestError("Request body must be a JSON array of operation objects.")
    changes = []
    for raw in doc:
        if not isinstance(raw, dict):
            raise BadRequestError("Operations must be JSON objects.")
        op, pointer = _op_and_path(raw, draft)
        path = decode_pointer(pointer)
        _check_depth(op, path)
        value = None
        if op != "remove":
            if "value" not in raw:
                raise BadRequestError(f'Operation "{op}" requires a member named "value".')
            value = raw["value"]
        change = Change(op, path, value, draft)
        check_change(change, validator)
        changes.append(change)
    return changes


def _op_and_path(raw: dict[str, Any], draft: int) -> tuple[str, Any]:
    available = ", ".join(OPERATIONS)
    if draft == 4:
        ops = [key for key in OPERATIONS if key in raw]
        if len(ops) != 1:
            word = "only" if ops else "exactly"
            raise BadRequestError(f"Operation objects must contain {word} one member named "
                                  '"add", "remove", or "replace".')
        return ops[0], raw[ops[0]]
    op = raw.get("op")
    if op is None:
        raise BadRequestError("Unable to find `op` in JSON Schema change. It must be one "
                              f"of the following: {available}.")
    if op not in OPERATIONS:
        raise BadRequestError(f"Invalid operation: `{op}`. It must be one of the "
                              f"following: {available}.")
    if "path" not in raw:
        raise BadRequestError("Unable to find 'path' in JSON Schema change")
    return str(op), raw["path"]


def decode_pointer(pointer: Any) -> tuple[str, ...]:
    """Parse Glance's restricted JSON pointer (``/a/b``, ``~0``/``~1`` escapes)."""
    if not isinstance(pointer, str):
        raise BadRequestError(f"Pointer `{pointer}` does not start with \"/\".")
    if not pointer.startswith("/"):
        raise BadRequestError(f'Pointer `{pointer}` does not start with "/".')
    if re.search(r"/\s*?/", pointer[1:]):
        raise BadRequestError(f'Pointer `{pointer}` contains adjacent "/".')
    if len(pointer) > 1 and pointer.endswith("/"):
        raise BadRequestError(f'Pointer `{pointer}` end with "/".')
    if pointer[1:].strip() == "/":
        raise BadRequestError(f"Pointer `{pointer}` does not contains valid token.")
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        raise BadRequestError(f'Pointer `{pointer}` contains "~" not part of a '
                              "recognized escape sequence.")
    return tuple(part.replace("~1", "/").replace("~0", "~").strip()
                 for part in pointer.lstrip("/").split("/"))


def _check_depth(op: str, path: tuple[str, ...]) -> None:
    limits = {"locations": {"add": 2, "remove": 2, "replace": 1}}.get(path[0], {})
    if len(path) != limits.get(op, 1):
        raise BadRequestError(
            f"Invalid JSON pointer for this resource: '/{'/'.join(path)}'")


def check_change(change: Change, validator: js.ImageValidator) -> None:
    """Refuse read-only and reserved attributes; check the value against the schema."""
    root = change.root
    if root in js.READ_ONLY:
        raise ForbiddenError(f"Attribute '{root}' is read-only.")
    if root in js.RESERVED or root.startswith(js.RESERVED_NAMESPACE):
        raise ForbiddenError(f"Attribute '{root}' is reserved.")
    if change.op == "remove":
        return
    if len(root) > MAX_PROPERTY_NAME:
        raise BadRequestError("Custom property should not be greater than 255 characters.")
    partial = {root: change.value}
    if len(change.path) > 1:
        partial = {root: [change.value]}
    try:
        validator.validate(partial)
    except js.SchemaError as exc:
        raise BadRequestError(str(exc)) from None


def apply_patch(image: Image, changes: list[Change]) -> ImageUpdate:
    """Apply ``changes`` in order; return the resulting columns, properties and tags."""
    columns = image.columns()
    props = dict(image.properties)
    tags = list(image.tags)
    for change in changes:
        root = change.root
        if root == "locations":
            raise ForbiddenError(f"It's not allowed to {change.op} locations if locations "
                                 "are invisible.")
        if change.op == "remove":
            _remove(root, columns, props, tags)
        elif root == "tags":
            tags = list(dict.fromkeys(change.value))
        elif root in MUTABLE_COLUMNS:
            _set_column(image, root, change.value, columns)
        elif change.op == "replace" and root not in props:
            raise ConflictError(f"Property {root} does not exist.")
        elif change.op == "add" and change.draft == 4 and root in props:
            raise ConflictError(f"Property {root} already present.")
        else:
            props[root] = change.value
    return ImageUpdate(columns, props, tuple(tags))


def _remove(root: str, columns: dict[str, Any], props: dict[str, str | None],
            tags: list[str]) -> None:
    if root in MUTABLE_COLUMNS or root == "tags" or root in js.BASE_ATTRIBUTES:
        raise ForbiddenError(f"Property {root} may not be removed.")
    if root not in props:
        raise ConflictError(f"Property {root} does not exist.")
    del props[root]


def _set_column(image: Image, root: str, value: Any, columns: dict[str, Any]) -> None:
    if root in ("disk_format", "container_format") and image.status != "queued" and (
            value != getattr(image, root)):
        raise ForbiddenError(f"Attribute {root} can be only replaced for a queued image.")
    if root in ("min_disk", "min_ram") and not 0 <= value < 2**31:
        raise BadRequestError(f"Invalid value for {root}: {value}")
    columns[root] = value
