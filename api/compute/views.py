"""JSON views of flavors, keypairs and servers, shaped by microversion as Nova's."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from nubis.api.compute.model import Flavor, Instance, Keypair

Version = tuple[int, int]


def iso(t: datetime | None) -> str | None:
    """Return Nova's timestamp format (``2024-01-02T03:04:05Z``)."""
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_time(t: datetime | None) -> str | None:
    """Return the ``OS-SRV-USG`` format (microseconds, no zone)."""
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.%f")


def links(base: str, kind: str, ident: str) -> list[dict[str, str]]:
    """Return ``self`` and ``bookmark`` links."""
    root = base.rsplit("/v2.1", 1)[0]
    return [{"rel": "self", "href": f"{base}/{kind}/{ident}"},
            {"rel": "bookmark", "href": f"{root}/{kind}/{ident}"}]


def flavor_brief(f: Flavor, base: str, mv: Version) -> dict[str, Any]:
    """Return a flavor as ``GET /flavors`` lists it."""
    out: dict[str, Any] = {"id": f.flavorid, "name": f.name,
                           "links": links(base, "flavors", f.flavorid)}
    if mv >= (2, 55):
        out["description"] = f.description
    return out


def flavor_detail(f: Flavor, base: str, mv: Version, show_specs: bool = True) -> dict[str, Any]:
    """Return a flavor as ``GET /flavors/detail`` and ``GET /flavors/{id}`` show it."""
    out = {**flavor_brief(f, base, mv), "ram": f.memory_mb, "disk": f.root_gb,
           "vcpus": f.vcpus, "OS-FLV-EXT-DATA:ephemeral": f.ephemeral_gb,
           "swap": f.swap or "", "rxtx_factor": f.rxtx_factor,
           "os-flavor-access:is_public": f.is_public, "OS-FLV-DISABLED:disabled": f.disabled}
    if mv >= (2, 61) and show_specs:
        out["extra_specs"] = dict(f.extra_specs)
    return out


def keypair_view(kp: Keypair, mv: Version, *, full: bool,
                 private_key: str | None = None) -> dict[str, Any]:
    """Return a keypair (``full``: as ``GET /os-keypairs/{name}`` and create show it)."""
    out: dict[str, Any] = {"name": kp.name, "public_key": kp.public_key,
                           "fingerprint": kp.fingerprint}
    if mv >= (2, 2):
        out["type"] = kp.type
    if full:
        out["user_id"] = kp.user_id
        if private_key is not None:
            out["private_key"] = private_key
    return out


def keypair_show(kp: Keypair, mv: Version) -> dict[str, Any]:
    """Return ``GET /os-keypairs/{name}`` (with the record fields Nova adds)."""
    return {**keypair_view(kp, mv, full=True), "created_at": iso(kp.created_at),
            "deleted": False, "deleted_at": None, "updated_at": None, "id": kp.id}


def host_id(project_id: str, host: str | None) -> str:
    """Return Nova's ``hostId``: sha224 of project and host (empty without a host)."""
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode()).hexdigest()


def server_brief(inst: Instance, base: str) -> dict[str, Any]:
    """Return a server as ``GET /servers`` lists it."""
    return {"id": inst.uuid, "name": inst.name, "links": links(base, "servers", inst.uuid)}


def _flavor(inst: Instance, base: str, mv: Version) -> dict[str, Any]:
    f = inst.flavor
    if mv < (2, 47):
        return {"id": f["id"], "links": [
            {"rel": "bookmark", "href": links(base, "flavors", f["id"])[1]["href"]}]}
    out = {"vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"],
           "ephemeral": f["ephemeral"], "swap": f["swap"], "original_name": f["name"]}
    out["extra_specs"] = dict(f.get("extra_specs") or {})
    return out


def _image(inst: Instance, base: str) -> Any:
    if not inst.image_ref:
        return ""
    return {"id": inst.image_ref, "links": [
        {"rel": "bookmark", "href": links(base, "images", inst.image_ref)[1]["href"]}]}


def _fault(inst: Instance, admin: bool) -> dict[str, Any] | None:
    if inst.fault is None or inst.vm_state not in ("error", "deleted"):
        return None
    fault = {"code": inst.fault.get("code", 500), "created": inst.fault.get("created"),
             "message": inst.fault.get("message", "")}
    if admin and inst.fault.get("details"):
        fault["details"] = inst.fault["details"]
    return fault


def server_detail(inst: Instance, base: str, mv: Version, admin: bool) -> dict[str, Any]:
    """Return a server as ``GET /servers/{id}`` and ``/servers/detail`` show it."""
    out: dict[str, Any] = {
        "id": inst.uuid, "name": inst.name, "status": inst.status,
        "tenant_id": inst.project_id, "user_id": inst.user_id,
        "metadata": dict(inst.metadata), "hostId": host_id(inst.project_id, inst.host),
        "image": _image(inst, base), "flavor": _flavor(inst, base, mv),
        "created": iso(inst.created_at), "updated": iso(inst.updated_at),
        "addresses": {}, "accessIPv4": "", "accessIPv6": "",
        "links": links(base, "servers", inst.uuid), "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": inst.availability_zone or "",
        "config_drive": "True" if inst.config_drive else "",
        "key_name": inst.key_name, "OS-SRV-USG:launched_at": usage_time(inst.launched_at),
        "OS-SRV-USG:terminated_at": usage_time(inst.terminated_at),
        "OS-EXT-STS:task_state": inst.task_state, "OS-EXT-STS:vm_state": inst.vm_state,
        "OS-EXT-STS:power_state": inst.power_state,
        "os-extended-volumes:volumes_attached": [],
    }
    if inst.status in ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"):
        out["progress"] = 0 if inst.status != "ACTIVE" else 100
    fault = _fault(inst, admin)
    if fault is not None:
        out["fault"] = fault
    if admin:
        out.update({"OS-EXT-SRV-ATTR:host": inst.host,
                    "OS-EXT-SRV-ATTR:hypervisor_hostname": inst.node,
                    "OS-EXT-SRV-ATTR:instance_name": f"nubis-{inst.uuid}"})
        if mv >= (2, 3):
            out.update({"OS-EXT-SRV-ATTR:reservation_id": inst.reservation_id,
                        "OS-EXT-SRV-ATTR:launch_index": inst.launch_index,
                        "OS-EXT-SRV-ATTR:hostname": inst.hostname,
                        "OS-EXT-SRV-ATTR:kernel_id": inst.kernel_id,
                        "OS-EXT-SRV-ATTR:ramdisk_id": inst.ramdisk_id,
                        "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                        "OS-EXT-SRV-ATTR:user_data": inst.user_data})
    elif mv >= (2, 90):
        out["OS-EXT-SRV-ATTR:hostname"] = inst.hostname
    if mv >= (2, 9):
        out["locked"] = inst.locked
    if mv >= (2, 16) and admin:
        out["host_status"] = "UP" if inst.host else ""
    if mv >= (2, 19):
        out["description"] = inst.description
    if mv >= (2, 26):
        out["tags"] = list(inst.tags)
    if mv >= (2, 63):
        out["trusted_image_certificates"] = None
    if mv >= (2, 73):
        out["locked_reason"] = None
    if mv >= (2, 96):
        out["pinned_availability_zone"] = None
    return out
