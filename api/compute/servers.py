"""``/servers``: create, list, show, update, delete and metadata (Nova v2.1)."""

from __future__ import annotations

import logging
import re
import secrets
import uuid as uuidlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import falcon.asgi
from nubis.api.compute import bdm
from nubis.api.compute import schema as s
from nubis.api.compute.build import Builder, BuildPlan, encode_user_data
from nubis.api.compute.cinder import CinderError, cinder_for
from nubis.api.compute.clients import PeerError
from nubis.api.compute.destination import Destination, zone_and_destination
from nubis.api.compute.errors import QuotaExceededError
from nubis.api.compute.errors import invalid_field as _bad
from nubis.api.compute.model import STATUS_VM_STATES, Flavor, Instance
from nubis.api.compute.netclient import NetworkRequest, VifInfo, parse_networks
from nubis.api.compute.service import ComputeService, Version, auth, body_of, mv_of, project_of
from nubis.api.compute.views import server_brief, server_detail
from nubis.api.shared.errors import (
    ApiError,
    BadRequestError,
    ConflictError,
    NotFoundError,
)
from nubis.api.shared.rest import read_json

_HOSTNAME_BAD = re.compile(r"[^a-z0-9-]+")
NO_NETWORKING = ("Networking is not configured on this cloud: boot with networks 'none' "
                 "(openstack server create --nic none).")


class ServiceUnavailableError(ApiError):
    """A peer the request needs is down (503)."""

    status = 503
    title = "Service Unavailable"


@dataclass(frozen=True)
class CreateRequest:
    """A validated ``POST /servers`` body."""

    name: str
    image_ref: str
    flavor_ref: str
    key_name: str | None
    user_data: str | None
    metadata: dict[str, str]
    availability_zone: str | None
    min_count: int
    max_count: int
    return_reservation_id: bool
    description: str | None
    hostname: str | None
    hints: dict[str, Any]
    tags: tuple[str, ...]
    #: ``none``, ``auto`` or a list of ``{uuid[, fixed_ip]}`` / ``{port}``.
    networks: NetworkRequest = "none"
    #: ``block_device_mapping_v2``, validated.
    block_devices: tuple[bdm.BlockDevice, ...] = ()
    #: Where an admin asks the instances to go (see :class:`Destination`).
    destination: Destination | None = None

    @property
    def volume_backed(self) -> bool:
        """Whether the instance boots from a volume."""
        return bdm.root_volume(self.block_devices) is not None


def _count(raw: Any, field: str) -> int:
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise _bad(field, f"Value: {raw}. must be an integer >= 1")
    return raw


def _ref(raw: Any, field: str) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 1024:
        raise _bad(field, f"'{field}' must be a non-empty string")
    return raw.rstrip("/").rsplit("/", 1)[-1]


def check_metadata(raw: Any, field: str = "metadata") -> dict[str, str]:
    """Validate server metadata (string keys 1-255, string values ≤ 255)."""
    if not isinstance(raw, dict):
        raise _bad(field, "must be an object")
    for key, value in raw.items():
        if not 1 <= len(key) <= 255:
            raise _bad(field, "metadata keys must be 1-255 characters")
        if not isinstance(value, str) or len(value) > 255:
            raise _bad(field, "metadata values must be strings of at most 255 characters")
    return dict(raw)


def check_networks(raw: Any, mv: Version, present: bool) -> NetworkRequest:
    """Return the networks a create asks for (``none``/``auto`` from 2.37, or a list)."""
    if not present:
        if mv >= (2, 37):
            raise _bad("networks", "'networks' is a required property")
        return "none"
    if raw in ("none", "auto") and mv >= (2, 37):
        return str(raw)
    if isinstance(raw, list) and all(isinstance(n, dict) for n in raw):
        return parse_networks(raw)
    raise _bad("networks", f"Value: {raw!r}. is not valid under any of the given schemas")


def parse_create(doc: Any, mv: Version) -> tuple[CreateRequest, dict[str, Any]]:
    """Validate a create body; return it and the scheduler hints."""
    body = body_of(doc, "server")
    if not isinstance(body, dict):
        raise _bad("server", "must be an object")
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or not name.strip():
        raise _bad("name", "must be a non-blank string of 1-255 characters")
    if "flavorRef" not in body:
        raise _bad("server", "'flavorRef' is a required property")
    networks = check_networks(body.get("networks"), mv, "networks" in body)
    image_ref = body.get("imageRef", "")
    min_count = _count(body.get("min_count", 1), "min_count")
    max_count = _count(body.get("max_count", min_count), "max_count")
    if min_count > max_count:
        raise BadRequestError("min_count must be <= max_count")
    bdms = bdm.parse(body.get("block_device_mapping_v2") or [], max_count)
    if bdm.root_volume(bdms) is not None:
        image_ref = ""
    elif bdms and image_ref == "" and bdm.boot_image(bdms) is None:
        raise BadRequestError("Block Device Mapping is Invalid: Boot sequence for the "
                              "instance and image/block device mapping combination is not "
                              "valid.")
    image_ref = bdm.boot_image(bdms) or image_ref
    if not image_ref and not bdms:
        raise _bad("server", "'imageRef' is a required property")
    az, destination = zone_and_destination(body, mv)
    key_name = body.get("key_name")
    if key_name is not None and not isinstance(key_name, str):
        raise _bad("key_name", "must be a string")
    desc = body.get("description")
    if desc is not None and (mv < (2, 19) or not isinstance(desc, str) or len(desc) > 255):
        raise _bad("description", "must be a string of at most 255 characters")
    tags = body.get("tags", [])
    if tags and (mv < (2, 52) or not isinstance(tags, list) or len(tags) > 50
                 or not all(isinstance(t, str) and 1 <= len(t) <= 60 for t in tags)):
        raise _bad("tags", "must be a list of at most 50 strings of 1-60 characters")
    hints = doc.get("os:scheduler_hints") or doc.get("OS-SCH-HNT:scheduler_hints") or {}
    if not isinstance(hints, dict):
        raise _bad("os:scheduler_hints", "must be an object")
    hostname = body.get("hostname")
    if hostname is not None and (mv < (2, 90) or not isinstance(hostname, str)):
        raise _bad("hostname", "must be a string")
    return CreateRequest(
        name=name, image_ref=_ref(image_ref, "imageRef") if image_ref else "",
        flavor_ref=_ref(body["flavorRef"], "flavorRef"), key_name=key_name,
        user_data=encode_user_data(body.get("user_data")),
        metadata=check_metadata(body.get("metadata", {})), availability_zone=az,
        min_count=min_count, max_count=max_count,
        return_reservation_id=bool(body.get("return_reservation_id", False)),
        description=desc, hostname=hostname, hints=dict(hints), tags=tuple(tags),
        networks=networks, block_devices=bdms, destination=destination), hints


def sanitize_hostname(name: str, fallback: str) -> str:
    """Return an RFC 1123 host name made from a display name (as Nova does)."""
    host = _HOSTNAME_BAD.sub("-", name.lower().replace("_", "-")).strip("-.")[:63]
    return host.strip("-") or fallback


class Servers:
    """``/servers`` and ``/servers/detail``."""

    def __init__(self, svc: ComputeService, builder: Builder) -> None:
        self.svc = svc
        self.builder = builder

    # --- create ------------------------------------------------------------------------
    async def _check_destination(self, req: falcon.asgi.Request,
                                 dest: Destination | None) -> None:
        """Allow a requested host to admins only; 2.74's must exist (Nova's 400)."""
        if dest is None:
            return
        if dest.forced:
            self.svc.require_admin(req, "os_compute_api:servers:create:forced_host")
            if dest.mismatched:
                raise BadRequestError(f"Compute host {dest.host} has no node {dest.node}.")
            return  # as in Nova, an unknown forced host ends as "No valid host"
        self.svc.require_admin(req, "compute:servers:create:requested_destination")
        if dest.mismatched:  # Nova looks the pair up and finds no such compute node
            raise BadRequestError(f"Compute host {dest.host} could not be found.")
        try:
            known = await self.svc.scheduler.hosts(max_age=0.0)
        except PeerError as exc:
            raise ServiceUnavailableError(f"The scheduler is unavailable: {exc}") from None
        for name in dest.hosts:
            if name not in known:
                raise BadRequestError(f"Compute host {name} could not be found.")


    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """Record the instances, answer 202 and build them in the background."""
        mv = mv_of(req)
        project = project_of(req)
        ctx = auth(req)
        create, hints = parse_create(await read_json(req), mv)
        await self._check_destination(req, create.destination)
        flavor = self._flavor(req, create.flavor_ref)
        token = req.get_header("X-Auth-Token") or ""
        if create.block_devices:
            boot = await self._bdm_sources(create.block_devices, token)
            image, kernel, ramdisk = await self._images(boot or create.image_ref, token,
                                                        flavor, create.volume_backed)
        else:
            image, kernel, ramdisk = await self._images(create.image_ref, token, flavor)
        public_keys: dict[str, str] = {}
        key_data = None
        if create.key_name is not None:
            kp = self.svc.store.get_keypair(ctx.user_id, create.key_name)
            if kp is None:
                raise BadRequestError("Invalid key_name provided.")
            public_keys = {kp.name: kp.public_key}
            key_data = kp.public_key
        count = self._quota_count(project, flavor, create)
        group = self._group(req, hints, count)
        rows = self._rows(create, count, flavor, image, ctx.user_id, project, key_data)
        vifs = await self._ports(create, [r["uuid"] for r in rows], token, project)
        self.svc.store.create_instances(rows)
        self.builder.mappings.add([bdm.Mapping(rows[0]["uuid"], str(b.uuid), b.boot_index,
                                               "volume", b.delete_on_termination)
                                   for b in create.block_devices if b.source_type == "volume"])
        if group is not None:
            self.svc.store.add_members(group["uuid"], [r["uuid"] for r in rows])
        instances = [i for i in (self.svc.store.get_instance(r["uuid"]) for r in rows) if i]
        action_ids = {i.uuid: self.svc.store.start_action(
            i.uuid, "create", req.context.request_id, project, ctx.user_id) for i in instances}
        plan = BuildPlan(token=token, image=image, kernel=kernel, ramdisk=ramdisk,
                         cmdline=str((image or {}).get("os_command_line") or ""),
                         public_keys=public_keys, scheduler_hints=hints,
                         action_ids=action_ids, instance_group=None if group is None else {
                             "uuid": group["uuid"], "policy": group["policy"],
                             "rules": group["rules"], "members": group["members"],
                             "hosts": group["hosts"]},
                         vifs={u: [v.as_dict() for v in vs] for u, vs in vifs.items()},
                         block_devices=create.block_devices,
                         requested_hosts=() if create.destination is None
                         else create.destination.hosts,
                         force_hosts=create.destination is not None
                         and create.destination.forced)
        self.svc.spawn(self.builder.build_instances(instances, plan),
                       f"build {instances[0].uuid}")
        resp.status = 202
        if create.return_reservation_id:
            resp.media = {"reservation_id": rows[0]["reservation_id"]}
            return
        first = instances[0]
        resp.media = {"server": {"id": first.uuid, "links": server_brief(
            first, self.svc.base_url)["links"], "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": "default"}], "adminPass": secrets.token_urlsafe(9)}}

    async def _bdm_sources(self, bdms: tuple[bdm.BlockDevice, ...],
                           token: str) -> str | dict[str, Any] | None:
        try:
            return await bdm.check_sources(
                cinder_for(self.svc.computes.http, self.svc.root_url), token, bdms)
        except CinderError as exc:
            raise ServiceUnavailableError(f"The volume service is unavailable: {exc}") from None

    async def _ports(self, create: CreateRequest, uuids: list[str], token: str,
                     project: str) -> dict[str, list[VifInfo]]:
        """Create or claim each instance's ports (nothing is left behind on a refusal)."""
        if create.networks == "none" or create.networks == []:
            return {}
        if self.svc.networks is None:
            raise BadRequestError(NO_NETWORKING)
        return await self.svc.networks.allocate(uuids, create.networks, token, project)

    def _group(self, req: falcon.asgi.Request, hints: dict[str, Any],
               count: int) -> dict[str, Any] | None:
        """Return the server group named by the ``group`` hint (400 if unknown, 403 full)."""
        ref = hints.get("group")
        if ref is None:
            return None
        if not isinstance(ref, str):
            raise _bad("os:scheduler_hints", "group must be a server group id")
        group = self.svc.store.get_group(ref)
        ctx = auth(req)
        if group is None or (group["project_id"] != ctx.project_id and not ctx.is_admin):
            raise BadRequestError(f"Invalid server group {ref}")
        limit = self.svc.limit_for(group["project_id"], "server_group_members")
        if len(group["members"]) + count > limit:
            raise QuotaExceededError("Quota exceeded, too many servers in group")
        return group

    def _flavor(self, req: falcon.asgi.Request, flavor_ref: str) -> Flavor:
        try:
            flavor = self.svc.flavor(req, flavor_ref)
        except NotFoundError:
            raise BadRequestError(f"Flavor {flavor_ref} could not be found.") from None
        if flavor.disabled:
            raise BadRequestError(f"Flavor {flavor_ref} is disabled.")
        return flavor

    async def _image(self, image_id: str, token: str, what: str) -> dict[str, Any]:
        try:
            doc = await self.svc.images.get(image_id, token)
        except PeerError as exc:
            raise ServiceUnavailableError(f"The image service is unavailable: {exc}") from None
        if doc is None:
            raise BadRequestError(f"{what} {image_id} could not be found.")
        if doc.get("status") != "active":
            raise BadRequestError(f"Image {image_id} is not active.")
        return doc

    async def _images(self, image_ref: str | dict[str, Any], token: str, flavor: Flavor,
                      volume_backed: bool = False
                      ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
        """Return the boot image and its kernel and ramdisk (a volume's image metadata)."""
        image = (image_ref if isinstance(image_ref, dict)
                 else await self._image(image_ref, token, "Image"))
        if (image.get("disk_format") or "") not in ("qcow2", "raw", "ami"):
            raise BadRequestError(f"Image {image.get('id')} has disk format "
                                  f"{image.get('disk_format')!r}, which cannot boot.")
        if int(image.get("min_ram") or 0) > flavor.memory_mb:
            raise BadRequestError("Flavor's memory is too small for requested image.")
        size = int(image.get("size") or 0)
        if not volume_backed and (int(image.get("min_disk") or 0) > flavor.root_gb or (
                flavor.root_gb and size > flavor.root_gb << 30)):
            raise BadRequestError("Flavor's disk is too small for requested image.")
        kernel = ramdisk = None
        if image.get("kernel_id"):
            kernel = await self._image(str(image["kernel_id"]), token, "Kernel image")
        if image.get("ramdisk_id"):
            ramdisk = await self._image(str(image["ramdisk_id"]), token, "Ramdisk image")
        return image, kernel, ramdisk

    def _quota_count(self, project: str, flavor: Flavor, create: CreateRequest) -> int:
        """Return how many instances fit the quotas (max_count down to min_count) or 403."""
        used = self.svc.store.usage(project)
        need = {"instances": 1, "cores": flavor.vcpus, "ram": flavor.memory_mb}
        fits = create.max_count
        for res, per in need.items():
            room = self.svc.limit_for(project, res) - used[res]
            fits = min(fits, room // per if per else fits)
        if fits < create.min_count:
            for res, per in need.items():
                limit = self.svc.limit_for(project, res)
                if used[res] + per * create.min_count > limit:
                    raise QuotaExceededError(
                        f"Quota exceeded for {res}: Requested {per * create.min_count}, "
                        f"but already used {used[res]} of {limit} {res}")
        if len(create.metadata) > self.svc.limit_for(project, "metadata_items"):
            raise QuotaExceededError("Quota exceeded for metadata_items: too many metadata items")
        return max(fits, create.min_count)

    def _rows(self, create: CreateRequest, count: int, flavor: Flavor,
              image: dict[str, Any], user_id: str, project: str,
              key_data: str | None) -> list[dict[str, Any]]:
        reservation = f"r-{secrets.token_hex(4)}"
        rows = []
        for index in range(count):
            uuid = str(uuidlib.uuid4())
            name = create.name if count == 1 else f"{create.name}-{index + 1}"
            hostname = create.hostname or sanitize_hostname(name, f"server-{uuid}")
            rows.append({
                "uuid": uuid, "project_id": project, "user_id": user_id, "name": name,
                "hostname": hostname, "description": create.description,
                "image_ref": "" if create.volume_backed else image["id"],
                "kernel_id": image.get("kernel_id") or "",
                "ramdisk_id": image.get("ramdisk_id") or "", "flavor": flavor.snapshot(),
                "vcpus": flavor.vcpus, "memory_mb": flavor.memory_mb,
                "root_gb": flavor.root_gb, "vm_state": "building",
                "task_state": "scheduling", "power_state": 0, "key_name": create.key_name,
                "key_data": key_data, "user_data": create.user_data,
                "metadata": create.metadata, "tags": list(create.tags),
                "config_drive": True, "availability_zone": create.availability_zone,
                "reservation_id": reservation, "launch_index": index, "locked": False})
        return rows

    # --- list --------------------------------------------------------------------------

    def _list(self, req: falcon.asgi.Request) -> list[Instance]:
        ctx = auth(req)
        project: str | None = project_of(req)
        all_tenants = req.get_param("all_tenants")
        if ctx.is_admin and all_tenants is not None and all_tenants.lower() not in (
                "0", "false", "off", "no"):
            project = req.get_param("project_id") or req.get_param("tenant_id")
        where = self._filters(req, ctx.is_admin)
        sort_key = req.get_param("sort_key") or "created_at"
        if sort_key not in ("created_at", "updated_at", "name", "uuid", "vm_state",
                            "task_state", "launched_at", "host", "display_name"):
            raise BadRequestError(f"Invalid sort_key {sort_key}")
        sort_key = "name" if sort_key == "display_name" else sort_key
        sort_dir = req.get_param("sort_dir") or "desc"
        if sort_dir not in ("asc", "desc"):
            raise BadRequestError(f"Invalid sort_dir {sort_dir}")
        deleted = ctx.is_admin and (req.get_param("deleted") or "").lower() in ("true", "1")
        found = self.svc.store.list_instances(project, deleted=deleted, where=where,
                                              sort_key=sort_key, sort_dir=sort_dir)
        name = req.get_param("name")
        if name:
            try:
                pattern = re.compile(name)
            except re.error:
                raise BadRequestError(f"Invalid regular expression in name: {name}") from None
            found = [i for i in found if pattern.search(i.name)]
        status = req.get_param("status")
        if status:
            found = [i for i in found if i.status == status.upper()]
        found = _tag_filter(req, found)
        return self.svc.page(req, found, lambda i: i.uuid, "server")

    def _filters(self, req: falcon.asgi.Request, admin: bool) -> list[Any]:
        t = s.instances
        where: list[Any] = []
        status = req.get_param("status")
        if status and status.upper() not in STATUS_VM_STATES and status.upper() not in (
                "REBOOT", "HARD_REBOOT", "REBUILD", "RESIZE"):
            raise BadRequestError(f"Invalid status value {status}")
        for param, col in (("image", t.c.image_ref), ("flavor", None),
                           ("reservation_id", t.c.reservation_id), ("key_name", t.c.key_name),
                           ("availability_zone", t.c.availability_zone)):
            value = req.get_param(param)
            if value and col is not None:
                where.append(col == value.rstrip("/").rsplit("/", 1)[-1])
        flavor = req.get_param("flavor")
        if flavor:
            where.append(t.c.flavor.contains(f'"id": "{flavor}"'))
        host = req.get_param("host")
        if host and admin:
            where.append(t.c.host == host)
        since = req.get_param("changes-since") or req.get_param("changes_since")
        if since:
            where.append(t.c.updated_at >= _parse_time(since, "changes-since"))
        return where

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List servers (id, name, links)."""
        found = self._list(req)
        resp.media = {"servers": [server_brief(i, self.svc.base_url) for i in found],
                      **self._links(req, found)}

    async def on_get_detail(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List servers in detail."""
        found = self._list(req)
        mv, admin = mv_of(req), auth(req).is_admin
        addrs = await addresses(self.svc, req, [i.uuid for i in found])
        resp.media = {"servers": [with_addresses(server_detail(
            i, self.svc.base_url, mv, admin), addrs) for i in found], **self._links(req, found)}

    def _links(self, req: falcon.asgi.Request, found: list[Instance]) -> dict[str, Any]:
        if not getattr(req.context, "page_full", False) or not found:
            return {}
        params = {k: v for k, v in req.params.items() if k != "marker"}
        query = "&".join(f"{k}={v}" for k, v in params.items())
        href = f"{self.svc.base_url}{req.path.split('/v2.1', 1)[1]}?" + (
            f"{query}&" if query else "") + f"marker={found[-1].uuid}"
        return {"servers_links": [{"rel": "next", "href": href}]}


def _tag_filter(req: falcon.asgi.Request, found: list[Instance]) -> list[Instance]:
    """Apply Nova's ``tags``/``tags-any``/``not-tags``/``not-tags-any`` list filters."""
    def wanted(name: str) -> set[str]:
        raw = req.get_param(name)
        return {t for t in raw.split(",") if t} if raw else set()
    every, anyof = wanted("tags"), wanted("tags-any")
    not_every, not_any = wanted("not-tags"), wanted("not-tags-any")
    out = []
    for inst in found:
        have = set(inst.tags)
        if (every and not every <= have) or (anyof and not anyof & have):
            continue
        if (not_every and not_every <= have) or (not_any and not_any & have):
            continue
        out.append(inst)
    return out


def _parse_time(raw: str, field: str) -> datetime:
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestError(f"Invalid input for query parameters {field}. "
                              f"Value: {raw}. is not a 'date-time'") from None
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t


async def addresses(svc: ComputeService, req: falcon.asgi.Request,
                    uuids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Return each server's ``addresses`` from its ports (empty without a network API)."""
    if svc.networks is None or not uuids:
        return {}
    return await svc.networks.addresses(uuids, req.get_header("X-Auth-Token") or "")


def with_addresses(view: dict[str, Any], addrs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Put a server's addresses into its detail view."""
    view["addresses"] = addrs.get(view["id"], {})
    return view


def find_server(svc: ComputeService, req: falcon.asgi.Request, server_id: str) -> Instance:
    """Return a live server the caller may see (another project's is a 404)."""
    inst = svc.store.get_instance(server_id)
    ctx = auth(req)
    if inst is None or (inst.project_id != ctx.project_id and not ctx.is_admin):
        raise NotFoundError(f"Instance {server_id} could not be found.")
    return inst


class ServerItem:
    """``GET|PUT|DELETE /servers/{id}``."""

    def __init__(self, svc: ComputeService, builder: Builder) -> None:
        self.svc = svc
        self.builder = builder

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     server_id: str) -> None:
        """Show a server."""
        inst = find_server(self.svc, req, server_id)
        addrs = await addresses(self.svc, req, [inst.uuid])
        resp.media = {"server": with_addresses(server_detail(
            inst, self.svc.base_url, mv_of(req), auth(req).is_admin), addrs)}

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     server_id: str) -> None:
        """Rename a server (and its description from 2.19, hostname from 2.90)."""
        mv = mv_of(req)
        inst = find_server(self.svc, req, server_id)
        body = body_of(await read_json(req), "server")
        if not isinstance(body, dict):
            raise _bad("server", "must be an object")
        values: dict[str, Any] = {}
        allowed = {"name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"}
        allowed |= {"description"} if mv >= (2, 19) else set()
        allowed |= {"hostname"} if mv >= (2, 90) else set()
        extra = sorted(set(body) - allowed)
        if extra:
            raise _bad("server", f"Additional properties are not allowed ('{extra[0]}' "
                       "was unexpected)")
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not 1 <= len(name) <= 255 or not name.strip():
                raise _bad("name", "must be a non-blank string of 1-255 characters")
            values["name"] = name
        if "description" in body:
            desc = body["description"]
            if desc is not None and (not isinstance(desc, str) or len(desc) > 255):
                raise _bad("description", "must be a string of at most 255 characters")
            values["description"] = desc
        if "hostname" in body:
            if not isinstance(body["hostname"], str) or not body["hostname"]:
                raise _bad("hostname", "must be a string")
            values["hostname"] = body["hostname"]
        updated = self.svc.store.update_instance(inst.uuid, **values) if values else inst
        if updated is None:
            raise NotFoundError(f"Instance {server_id} could not be found.")
        resp.media = {"server": server_detail(updated, self.svc.base_url, mv,
                                              auth(req).is_admin)}

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        server_id: str) -> None:
        """Delete a server (background: domain, files, allocations)."""
        inst = find_server(self.svc, req, server_id)
        if inst.locked and not auth(req).is_admin:
            raise ConflictError(f"Instance {inst.uuid} is locked")
        if inst.task_state == "deleting":
            resp.status = 204
            return
        if inst.vm_state == "building" and inst.task_state in ("scheduling", "spawning"):
            # The build owns the instance until it finishes; it sees this and deletes.
            if self.svc.store.update_instance(inst.uuid, expected_task_state=inst.task_state,
                                              task_state="deleting") is not None:
                if self.svc.networks is not None:
                    await self.svc.networks.release(inst.uuid,
                                                    req.get_header("X-Auth-Token") or "")
                resp.status = 204
                return
            inst = find_server(self.svc, req, server_id)
        if self.svc.networks is not None:
            await self.svc.networks.release(inst.uuid, req.get_header("X-Auth-Token") or "")
        moved = self.svc.store.update_instance(inst.uuid, task_state="deleting")
        self.svc.store.start_action(inst.uuid, "delete", req.context.request_id,
                                    inst.project_id, auth(req).user_id)
        if moved is not None:
            self.svc.spawn(self._delete(moved, req.get_header("X-Auth-Token") or ""),
                           f"delete {inst.uuid}")
        resp.status = 204

    async def _delete(self, inst: Instance, token: str) -> None:
        """Delete the instance, then release its volumes (``delete_on_termination``)."""
        await self.builder.delete(inst)
        try:
            await bdm.release(self.builder.cinder, self.builder.mappings, token, inst.uuid)
        except CinderError as exc:
            logging.getLogger("nubis.api.compute").warning(
                "could not release the volumes of %s: %s", inst.uuid, exc)


class Metadata:
    """``/servers/{id}/metadata[/{key}]``."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    def _save(self, req: falcon.asgi.Request, inst: Instance, meta: dict[str, str]) -> None:
        if len(meta) > self.svc.limit_for(inst.project_id, "metadata_items"):
            raise QuotaExceededError("Quota exceeded for metadata_items: too many metadata items")
        if self.svc.store.update_instance(inst.uuid, metadata=meta) is None:
            raise NotFoundError(f"Instance {inst.uuid} could not be found.")

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     server_id: str) -> None:
        """Return all metadata."""
        resp.media = {"metadata": dict(find_server(self.svc, req, server_id).metadata)}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                      server_id: str) -> None:
        """Merge metadata items."""
        inst = find_server(self.svc, req, server_id)
        new = check_metadata(body_of(await read_json(req), "metadata"))
        meta = {**inst.metadata, **new}
        self._save(req, inst, meta)
        resp.media = {"metadata": meta}

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     server_id: str) -> None:
        """Replace all metadata."""
        inst = find_server(self.svc, req, server_id)
        meta = check_metadata(body_of(await read_json(req), "metadata"))
        self._save(req, inst, meta)
        resp.media = {"metadata": meta}

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         server_id: str, key: str) -> None:
        """Return one item."""
        inst = find_server(self.svc, req, server_id)
        if key not in inst.metadata:
            raise NotFoundError("Metadata item was not found")
        resp.media = {"meta": {key: inst.metadata[key]}}

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         server_id: str, key: str) -> None:
        """Set one item (the body's single key must match the URL)."""
        inst = find_server(self.svc, req, server_id)
        item = check_metadata(body_of(await read_json(req), "meta"), "meta")
        if len(item) != 1:
            raise BadRequestError("Request body contains too many items")
        if key not in item:
            raise BadRequestError("Request body and URI mismatch")
        self._save(req, inst, {**inst.metadata, **item})
        resp.media = {"meta": item}

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            server_id: str, key: str) -> None:
        """Delete one item."""
        inst = find_server(self.svc, req, server_id)
        if key not in inst.metadata:
            raise NotFoundError("Metadata item was not found")
        self._save(req, inst, {k: v for k, v in inst.metadata.items() if k != key})
        resp.status = 204



def _check_tag(tag: str) -> str:
    if not 1 <= len(tag) <= 60 or "/" in tag or "," in tag:
        raise BadRequestError(f"Invalid input for field/attribute tag. Value: {tag}.")
    return tag


class Tags:
    """``/servers/{id}/tags[/{tag}]`` (2.26+)."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc

    def _server(self, req: falcon.asgi.Request, server_id: str) -> Instance:
        if mv_of(req) < (2, 26):
            raise NotFoundError("The resource could not be found.")
        return find_server(self.svc, req, server_id)

    def _save(self, inst: Instance, tags: list[str]) -> None:
        if len(tags) > 50:
            raise BadRequestError("The number of tags exceeded the per-server limit 50")
        if self.svc.store.update_instance(inst.uuid, tags=tags) is None:
            raise NotFoundError(f"Instance {inst.uuid} could not be found.")

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     server_id: str) -> None:
        """List tags."""
        resp.media = {"tags": list(self._server(req, server_id).tags)}

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     server_id: str) -> None:
        """Replace all tags."""
        inst = self._server(req, server_id)
        tags = body_of(await read_json(req), "tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _bad("tags", "must be a list of strings")
        clean = list(dict.fromkeys(_check_tag(t) for t in tags))
        self._save(inst, clean)
        resp.media = {"tags": clean}

    async def on_delete(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                        server_id: str) -> None:
        """Remove all tags."""
        self._save(self._server(req, server_id), [])
        resp.status = 204

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         server_id: str, tag: str) -> None:
        """204 if the server has the tag, else 404."""
        if tag not in self._server(req, server_id).tags:
            raise NotFoundError(f"Tag {tag} not found")
        resp.status = 204

    async def on_put_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         server_id: str, tag: str) -> None:
        """Add one tag (201, or 204 if it was there)."""
        inst = self._server(req, server_id)
        if tag in inst.tags:
            resp.status = 204
            return
        self._save(inst, [*inst.tags, _check_tag(tag)])
        resp.status = 201
        resp.set_header("Location", f"{self.svc.base_url}/servers/{inst.uuid}/tags/{tag}")

    async def on_delete_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                            server_id: str, tag: str) -> None:
        """Remove one tag."""
        inst = self._server(req, server_id)
        if tag not in inst.tags:
            raise NotFoundError(f"Tag {tag} not found")
        self._save(inst, [t for t in inst.tags if t != tag])
        resp.status = 204
