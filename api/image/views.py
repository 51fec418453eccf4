"""How images and memberships look on the wire (Glance's ResponseSerializer)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from nubis.api.image.model import Image, Member

#: Columns shown as they are (Glance's ``_format_image`` attribute list).
SHOWN = ("name", "disk_format", "container_format", "visibility", "size", "virtual_size",
         "status", "checksum", "protected", "min_ram", "min_disk", "owner", "os_hidden",
         "os_hash_algo", "os_hash_value")


def isotime(when: datetime) -> str:
    """Return Glance's timestamp format (UTC, to the second, ``Z``)."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_href(image_id: str, sub: str = "") -> str:
    """Return the relative link Glance puts in image documents."""
    return f"/v2/images/{image_id}" + (f"/{sub}" if sub else "")


def image_view(image: Image) -> dict[str, Any]:
    """Return the JSON document of one image."""
    view: dict[str, Any] = dict(image.properties)
    for key in SHOWN:
        view[key] = getattr(image, key)
    view.update({"id": image.id, "created_at": isotime(image.created_at),
                 "updated_at": isotime(image.updated_at), "tags": list(image.tags),
                 "self": image_href(image.id), "file": image_href(image.id, "file"),
                 "schema": "/v2/schemas/image"})
    return view


def images_page(images: Sequence[Image], params: Mapping[str, Sequence[str]],
                full_page: bool) -> dict[str, Any]:
    """Return a page of ``GET /v2/images`` with ``first`` and (if full) ``next`` links."""
    flat = {k: v[-1] for k, v in params.items() if v and k != "marker"}
    body: dict[str, Any] = {"images": [image_view(i) for i in images],
                            "first": "/v2/images", "schema": "/v2/schemas/images"}
    if flat:
        body["first"] = f"/v2/images?{urllib.parse.urlencode(flat)}"
    if full_page and images:
        body["next"] = "/v2/images?" + urllib.parse.urlencode({**flat, "marker": images[-1].id})
    return body


def member_view(member: Member) -> dict[str, Any]:
    """Return the JSON document of one membership."""
    return {"member_id": member.member_id, "image_id": member.image_id,
            "status": member.status, "created_at": isotime(member.created_at),
            "updated_at": isotime(member.updated_at), "schema": "/v2/schemas/member"}


def version_list(v2_url: str) -> dict[str, Any]:
    """Return Glance's version list (v2.0 up to v2.7, with this endpoint's URL)."""
    values = [{"id": f"v2.{minor}", "status": "CURRENT" if minor == 7 else "SUPPORTED",
               "links": [{"rel": "self", "href": v2_url}]} for minor in range(7, -1, -1)]
    return {"versions": values}
