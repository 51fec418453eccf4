"""The metadata service guests reach at 169.254.169.254, as relayed by the network agents.

``GET /compute/metadata/<path>`` answers Nova's metadata API for one instance: the
OpenStack tree (``/openstack/latest/meta_data.json``, ``user_data``,
``network_data.json``, ``vendor_data.json``) and the EC2-style tree cloud-init reads
(``/latest/meta-data/...``, ``/latest/user-data``). It is not for clients: the
network agent's proxy, which has matched the guest's source address to its port,
sends the compute service token in ``X-Service-Token`` and the instance in
``X-Instance-ID`` (Neutron's metadata proxy sends Nova ``X-Instance-ID`` the same
way). Anything else is a 403; an unknown instance or path a 404, as plain text.
"""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any

import falcon
import falcon.asgi
from nubis.api.compute.model import Instance
from nubis.api.compute.service import ComputeService

OPENSTACK_FILES = ("meta_data.json", "network_data.json", "user_data", "vendor_data.json")
EC2_KEYS = ("ami-id", "hostname", "instance-id", "instance-type", "local-hostname",
            "local-ipv4", "placement/", "public-keys/", "reservation-id")


def meta_data(inst: Instance) -> dict[str, Any]:
    """Return ``meta_data.json`` of an instance."""
    keys = ([{"name": inst.key_name, "type": "ssh", "data": inst.key_data}]
            if inst.key_name and inst.key_data else [])
    return {"uuid": inst.uuid, "name": inst.name, "hostname": inst.hostname,
            "project_id": inst.project_id, "launch_index": inst.launch_index,
            "availability_zone": inst.availability_zone or "nova",
            "meta": dict(inst.metadata), "devices": [], "keys": keys,
            "public_keys": {k["name"]: k["data"] for k in keys}}


def ec2_value(inst: Instance, key: str, guest_ip: str) -> str | None:
    """Return one ``/latest/meta-data/`` value (None when there is no such key)."""
    values = {"ami-id": inst.image_ref, "hostname": inst.hostname,
              "local-hostname": inst.hostname, "instance-id": inst.uuid,
              "instance-type": str(inst.flavor.get("name", "")), "local-ipv4": guest_ip,
              "reservation-id": inst.reservation_id, "placement": "availability-zone",
              "placement/availability-zone": inst.availability_zone or "nova"}
    if key == "":
        return "\n".join(EC2_KEYS)
    if key == "public-keys":
        return f"0={inst.key_name}" if inst.key_name else ""
    if key in ("public-keys/0", "public-keys/0/") and inst.key_name:
        return "openssh-key"
    if key == "public-keys/0/openssh-key" and inst.key_data:
        return inst.key_data
    return values.get(key)


class MetadataService:
    """``GET /metadata/{path}`` for the network agents' proxies."""

    auth_required = False

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     path: str = "") -> None:
        """Answer one metadata path of the instance in ``X-Instance-ID``."""
        token = req.get_header("X-Service-Token") or ""
        expected = self.svc.cfg.compute_token or ""
        resp.content_type = "text/plain"
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            resp.status, resp.data = falcon.HTTP_403, b"Forbidden\n"
            return
        inst = self.svc.store.get_instance(req.get_header("X-Instance-ID") or "")
        body = None if inst is None else self._lookup(
            inst, path.strip("/"), req.get_header("X-Forwarded-For") or "")
        if body is None:
            resp.status, resp.data = falcon.HTTP_404, b"Not Found\n"
            return
        if isinstance(body, dict):
            resp.content_type = "application/json"
            resp.data = json.dumps(body).encode()
        else:
            resp.data = body

    def _lookup(self, inst: Instance, path: str, guest_ip: str) -> bytes | dict[str, Any] | None:
        user_data = base64.b64decode(inst.user_data) if inst.user_data else None
        if path in ("", "openstack"):
            return b"latest\n" if path else b"latest\nopenstack\n"
        if path.startswith("openstack/"):
            version, _, name = path.removeprefix("openstack/").partition("/")
            if version not in ("latest", "2012-08-10", "2013-04-04", "2016-06-30",
                               "2018-08-27"):
                return None
            if name == "":
                return "\n".join(OPENSTACK_FILES).encode()
            files: dict[str, bytes | dict[str, Any] | None] = {
                "meta_data.json": meta_data(inst),
                "network_data.json": {"links": [], "networks": [], "services": []},
                "vendor_data.json": {}, "user_data": user_data}
            return files.get(name)
        if path == "latest":
            return b"meta-data/\nuser-data\n"
        if path == "latest/user-data":
            return user_data
        if path == "latest/meta-data" or path.startswith("latest/meta-data/"):
            value = ec2_value(inst, path.removeprefix("latest/meta-data").strip("/"), guest_ip)
            return None if value is None else value.encode()
        return None
