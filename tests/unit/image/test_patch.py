"""Glance's JSON Patch parsing and application (pure logic)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from nubis.api.image.errors import UnsupportedMediaTypeError
from nubis.api.image.jsonschemas import ImageValidator
from nubis.api.image.model import Image
from nubis.api.image.patch import apply_patch, decode_pointer, parse_patch
from nubis.api.shared.errors import BadRequestError, ConflictError, ForbiddenError

V21 = "application/openstack-images-v2.1-json-patch"
V20 = "application/openstack-images-v2.0-json-patch"
VALIDATOR = ImageValidator()
NOW = datetime(2024, 1, 2, 3, 4, 5)


def image(**kw: Any) -> Image:
    base: dict[str, Any] = dict(
        id="5c5b8a5e-1f3b-4e0c-9d44-0c6a1b2c3d4e", name="img", status="queued",
        visibility="shared", protected=False, os_hidden=False, owner="p1", disk_format="raw",
        container_format="bare", size=None, virtual_size=None, checksum=None,
        os_hash_algo=None, os_hash_value=None, min_disk=0, min_ram=0, created_at=NOW,
        updated_at=NOW, properties={"os_distro": "debian"}, tags=("a",))
    base.update(kw)
    return Image(**base)


def patch(ops: Any, media: str = V21, img: Image | None = None) -> Any:
    return apply_patch(img or image(), parse_patch(media, ops, VALIDATOR))


def test_add_replace_remove_properties_columns_and_tags() -> None:
    out = patch([{"op": "add", "path": "/hw_disk_bus", "value": "virtio"},
                 {"op": "replace", "path": "/os_distro", "value": "alpine"},
                 {"op": "add", "path": "/name", "value": "renamed"},
                 {"op": "replace", "path": "/tags", "value": ["b", "c", "b"]},
                 {"op": "replace", "path": "/min_ram", "value": 512},
                 {"op": "remove", "path": "/hw_disk_bus"}])
    assert out.properties == {"os_distro": "alpine"}
    assert out.columns["name"] == "renamed" and out.columns["min_ram"] == 512
    assert out.tags == ("b", "c")


def test_add_overwrites_in_v21_but_conflicts_in_v20() -> None:
    out = patch([{"op": "add", "path": "/os_distro", "value": "arch"}])
    assert out.properties["os_distro"] == "arch"
    with pytest.raises(ConflictError, match="already present"):
        patch([{"add": "/os_distro", "value": "arch"}], V20)


@pytest.mark.parametrize(("ops", "error", "words"), [
    ([{"op": "replace", "path": "/missing", "value": "x"}], ConflictError, "does not exist"),
    ([{"op": "remove", "path": "/missing"}], ConflictError, "does not exist"),
    ([{"op": "remove", "path": "/name"}], ForbiddenError, "may not be removed"),
    ([{"op": "remove", "path": "/tags"}], ForbiddenError, "may not be removed"),
    ([{"op": "replace", "path": "/checksum", "value": "x"}], ForbiddenError, "read-only"),
    ([{"op": "replace", "path": "/id", "value": "x"}], ForbiddenError, "read-only"),
    ([{"op": "add", "path": "/deleted", "value": "x"}], ForbiddenError, "reserved"),
    ([{"op": "add", "path": "/os_glance_lock", "value": "x"}], ForbiddenError, "reserved"),
    ([{"op": "add", "path": "/x", "value": 1}], BadRequestError, "does not match schema"),
    ([{"op": "add", "path": "/" + "k" * 256, "value": "v"}], BadRequestError, "255"),
    ([{"op": "replace", "path": "/min_ram", "value": -1}], BadRequestError, "min_ram"),
    ([{"op": "replace", "path": "/protected", "value": "yes"}], BadRequestError, "schema"),
    ([{"op": "test", "path": "/name", "value": "x"}], BadRequestError, "Invalid operation"),
    ([{"op": "add", "value": "x"}], BadRequestError, "Unable to find 'path'"),
    ([{"op": "add", "path": "/a/b", "value": "x"}], BadRequestError, "Invalid JSON pointer"),
    ([{"op": "add", "path": "/x"}], BadRequestError, 'member named "value"'),
    ({"op": "add"}, BadRequestError, "JSON array"),
    ([1], BadRequestError, "JSON objects"),
    ([{"op": "add", "path": "/locations/-", "value": {"url": "u", "metadata": {}}}],
     ForbiddenError, "locations"),
])
def test_refused_changes(ops: Any, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        patch(ops)


def test_formats_change_only_while_queued() -> None:
    active = image(status="active")
    with pytest.raises(ForbiddenError, match="queued image"):
        patch([{"op": "replace", "path": "/disk_format", "value": "qcow2"}], img=active)
    same = patch([{"op": "replace", "path": "/disk_format", "value": "raw"}], img=active)
    assert same.columns["disk_format"] == "raw"


def test_media_type_must_be_a_json_patch() -> None:
    with pytest.raises(UnsupportedMediaTypeError) as err:
        parse_patch("application/json", [], VALIDATOR)
    assert V21 in err.value.headers["Accept-Patch"]
    assert parse_patch(f"{V21}; charset=UTF-8", [], VALIDATOR) == []


@pytest.mark.parametrize(("pointer", "parts"), [
    ("/name", ("name",)), ("/a~1b", ("a/b",)), ("/a~0b", ("a~b",)),
    ("/locations/0", ("locations", "0"))])
def test_pointer_decoding(pointer: str, parts: tuple[str, ...]) -> None:
    assert decode_pointer(pointer) == parts


@pytest.mark.parametrize("pointer", ["name", "/a//b", "/x/", "/a~2", "/a~", 5])
def test_bad_pointers(pointer: Any) -> None:
    with pytest.raises(BadRequestError):
        decode_pointer(pointer)
