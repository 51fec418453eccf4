"""The build flow and the power actions, as Nova's conductor and compute manager run them.

``POST /servers`` records the instances (``building``/``scheduling``) and answers
202; :func:`build_instances` then asks the scheduler to select and claim (one
request for all of them), and has each selected compute daemon build its
instance. Every state change is a compare-and-swap on ``task_state``: a delete
that arrives during a build sets ``deleting``, and the build finishes by deleting
(domain, files, allocations). A failure puts the instance in ``ERROR`` with a
fault saying why, and releases its claim — after trying the scheduler's alternate
hosts first (``reschedule.py``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nubis.api.compute import bdm
from nubis.api.compute import schema as s
from nubis.api.compute.bdm import BlockDevice, root_volume
from nubis.api.compute.cinder import CinderClient, CinderError, cinder_for
from nubis.api.compute.clients import NoValidHostError, PeerError
from nubis.api.compute.migrations import MigrationStore, release_open_resize
from nubis.api.compute.model import RUNNING, SHUTDOWN, Instance
from nubis.api.compute.reschedule import Alternate, claim_alternate, retryable
from nubis.api.compute.service import ComputeService
from nubis.api.compute.store import utcnow

LOG = logging.getLogger("nubis.api.compute")


@dataclass(frozen=True)
class BuildPlan:
    """What every instance of one create request shares."""

    token: str
    image: dict[str, Any] | None
    kernel: dict[str, Any] | None
    ramdisk: dict[str, Any] | None
    cmdline: str
    public_keys: dict[str, str]
    scheduler_hints: dict[str, Any] = field(default_factory=dict)
    instance_group: dict[str, Any] | None = None
    #: instance uuid -> id of its ``create`` instance action (events are recorded there).
    action_ids: dict[str, int] = field(default_factory=dict)
    #: instance uuid -> its NICs (``VifInfo.as_dict``) for the compute daemon.
    vifs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: ``block_device_mapping_v2`` (volumes to make and attach; boot from volume).
    block_devices: tuple[BlockDevice, ...] = ()
    #: The only hosts the scheduler may pick (an admin's requested destination).
    requested_hosts: tuple[str, ...] = ()
    #: Whether they are forced (``zone:host``): the scheduler then skips its filters.
    force_hosts: bool = False

    @property
    def volume_backed(self) -> bool:
        """Whether the instances boot from a volume (no root disk from the image)."""
        return root_volume(self.block_devices) is not None


def fault(message: str, code: int = 500, details: str = "") -> dict[str, Any]:
    """Return an instance fault record."""
    return {"code": code, "message": message[:255], "details": details or message,
            "created": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")}


def _image_ref(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {"id": doc["id"], "sha512": doc.get("os_hash_value") or "",
            "disk_format": doc.get("disk_format") or "raw"}


def request_spec(instances: list[Instance], plan: BuildPlan) -> dict[str, Any]:
    """Return the scheduler's request spec (Nova's RequestSpec) for these instances."""
    first = instances[0]
    f = first.flavor
    image = plan.image or {}
    props = {k: v for k, v in image.items() if k.startswith(("hw_", "img_", "trait",
                                                               "hypervisor_", "architecture",
                                                               "vm_mode"))}
    spec: dict[str, Any] = {
        "instance_uuids": [i.uuid for i in instances], "min_count": len(instances),
        "project_id": first.project_id, "user_id": first.user_id,
        "flavor": {"vcpus": f["vcpus"], "memory_mb": f["ram"],
                   "root_gb": 0 if plan.volume_backed else f["disk"],
                   "ephemeral_gb": f["ephemeral"], "swap": f["swap"],
                   "extra_specs": dict(f.get("extra_specs") or {})},
        "image": {"id": image.get("id"), "properties": props},
        "scheduler_hints": plan.scheduler_hints,
    }
    if first.availability_zone:
        spec["availability_zone"] = first.availability_zone
    if plan.requested_hosts:
        spec["requested_hosts"] = list(plan.requested_hosts)
        spec["force_hosts"] = plan.force_hosts
    if plan.instance_group is not None:
        spec["instance_group"] = plan.instance_group
    return spec


class Builder:
    """Runs builds, deletes and power actions against the peers."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc
        self.migrations = MigrationStore(svc.store.engine)
        self.mappings = bdm.MappingStore(svc.store.engine)

    @property
    def cinder(self) -> CinderClient:
        """The client of the volume API (with the caller's token on every call)."""
        return cinder_for(self.svc.computes.http, self.svc.root_url)

    async def host_url(self, host: str) -> str:
        """Return the compute daemon URL of ``host`` (reported to the scheduler)."""
        for attempt in range(2):
            hosts = await self.svc.scheduler.hosts(max_age=5.0 if attempt == 0 else 0.0)
            url = ((hosts.get(host) or {}).get("stats") or {}).get("compute_url")
            if url:
                return str(url)
        raise PeerError(f"compute host {host} is not known to the scheduler")

    # --- build -------------------------------------------------------------------------

    async def build_instances(self, instances: list[Instance], plan: BuildPlan) -> None:
        """Schedule then build every instance (the background half of ``POST /servers``)."""
        t0 = utcnow()
        try:
            selections = await self.svc.scheduler.select(request_spec(instances, plan))
        except PeerError as exc:
            message = str(exc) if isinstance(exc, NoValidHostError) else (
                f"scheduler unavailable: {exc}")
            self._events(plan, instances, "conductor_schedule_and_build_instances", t0,
                         "Error", message)
            await asyncio.gather(*(self._fail(i.uuid, message, "scheduling")
                                   for i in instances))
            return
        self._events(plan, instances, "conductor_schedule_and_build_instances", t0, "Success")
        by_uuid = {sel["instance_uuid"]: sel for sel in selections}
        await asyncio.gather(*(self._build_one(i, by_uuid.get(i.uuid), plan)
                               for i in instances))

    async def _build_one(self, inst: Instance, sel: dict[str, Any] | None,
                         plan: BuildPlan) -> None:
        if sel is None:
            await self._fail(inst.uuid, "No valid host was found.", "scheduling")
            return
        host, node = str(sel["host"]), str(sel.get("nodename") or sel["host"])
        moved = self.svc.store.update_instance(inst.uuid, expected_task_state="scheduling",
                                               task_state="spawning", host=host, node=node,
                                               **self._zone_of(inst, host))
        tried = {host}
        attached: list[bdm.Attached] = []
        if moved is not None and plan.block_devices:
            try:
                attached = await self._volumes(moved, host, plan)
            except CinderError as exc:
                await self._release_volumes(inst.uuid, plan)
                await self._fail(inst.uuid, f"Build of instance {inst.uuid} aborted: "
                                 f"block device setup failed: {exc}", "spawning", host=host)
                return
        while True:
            if moved is None:
                await self._release_volumes(inst.uuid, plan)
                await self._finish_deleted(inst.uuid, host)
                return
            t0 = utcnow()
            try:
                url = await self.host_url(host)
                answer = await self.svc.computes.build(
                    url, self._build_body(moved, plan, attached))
                break
            except PeerError as exc:
                message = f"Build of instance {inst.uuid} aborted: {exc}"
                self._events(plan, [inst], "compute__do_build_and_run_instance", t0, "Error",
                             message)
                alt = await self._reschedule(moved, sel, tried, host, exc)
                if alt is None:
                    if len(tried) > 1:
                        message += (f" (tried hosts: {', '.join(sorted(tried))}; "
                                    "no alternate host is left)")
                    await self._release_volumes(inst.uuid, plan)
                    await self._fail(inst.uuid, message, "spawning", host=host)
                    return
            host, node = alt.host, alt.node
            moved = self.svc.store.update_instance(inst.uuid, expected_task_state="spawning",
                                                   host=host, node=node,
                                                   **self._zone_of(inst, host))
        self._build_events(plan, inst.uuid, t0, answer.get("timings") or {})
        if attached:
            try:
                await bdm.complete(self.cinder, plan.token, host, attached)
            except CinderError as exc:
                LOG.warning("could not complete the attachments of %s: %s", inst.uuid, exc)
        done = self.svc.store.update_instance(
            inst.uuid, expected_task_state="spawning", vm_state="active", task_state=None,
            power_state=int(answer.get("power_state", RUNNING)), launched_at=utcnow())
        if done is None:
            await self._release_volumes(inst.uuid, plan)
            await self._finish_deleted(inst.uuid, host)

    def _zone_of(self, inst: Instance, host: str) -> dict[str, str]:
        """Return the zone to record for an instance placed on ``host``.

        As Nova's conductor does, an instance booted without a zone takes its
        host's (an aggregate's ``availability_zone``, else the default zone), so
        ``OS-EXT-AZ:availability_zone`` and the metadata service name it.
        """
        if inst.availability_zone:
            return {}
        zone = self.svc.store.host_zones().get(host, self.svc.cfg.default_availability_zone)
        return {"availability_zone": zone}

    async def _reschedule(self, inst: Instance, sel: dict[str, Any], tried: set[str],
                          failed: str, exc: PeerError) -> Alternate | None:
        """Clear the failed host and move the claim to an alternate (None: none left)."""
        if not retryable(exc):
            return None
        try:
            await self.svc.computes.delete(await self.host_url(failed), inst.uuid)
        except PeerError as err:
            LOG.warning("could not remove %s from %s: %s", inst.uuid, failed, err)
        return await claim_alternate(self.svc, inst, sel, tried)

    def _events(self, plan: BuildPlan, instances: list[Instance], event: str,
                start: datetime, result: str, details: str | None = None) -> None:
        finish = utcnow()
        for inst in instances:
            action_id = plan.action_ids.get(inst.uuid)
            if action_id is not None:
                self.svc.store.add_event(action_id, event, start, finish, result, details)

    def _build_events(self, plan: BuildPlan, uuid: str, start: datetime,
                      timings: dict[str, float]) -> None:
        """Record the host's phases (image fetch, spawn) and the whole build call."""
        action_id = plan.action_ids.get(uuid)
        if action_id is None:
            return
        at = start
        for event, key in (("compute_fetch_images", "image"), ("compute_spawn", "spawn")):
            end = at + timedelta(seconds=float(timings.get(key, 0.0)))
            self.svc.store.add_event(action_id, event, at, end, "Success")
            at = end
        self.svc.store.add_event(action_id, "compute__do_build_and_run_instance", start,
                                 utcnow(), "Success")

    async def _volumes(self, inst: Instance, host: str,
                       plan: BuildPlan) -> list[bdm.Attached]:
        """Create the volumes the mappings ask for and attach every volume (in order)."""
        attached = []
        for b in plan.block_devices:
            if b.destination_type != "volume":
                continue
            volume_id = b.uuid
            if b.source_type != "volume":
                volume_id = await bdm.create_volume(self.cinder, plan.token, inst.name, b)
                self.mappings.add([bdm.Mapping(inst.uuid, volume_id, b.boot_index,
                                               b.source_type, b.delete_on_termination)])
            assert volume_id is not None
            attached.append(await bdm.attach(self.cinder, plan.token, inst.uuid, host,
                                             volume_id, b.boot_index))
        return attached

    async def _release_volumes(self, uuid: str, plan: BuildPlan) -> None:
        """Detach the volumes of a build that failed; delete those marked so."""
        if not plan.block_devices:
            return
        try:
            await bdm.release(self.cinder, self.mappings, plan.token, uuid)
        except CinderError as exc:
            LOG.warning("could not release the volumes of %s: %s", uuid, exc)

    def _build_body(self, inst: Instance, plan: BuildPlan,
                    attached: tuple[bdm.Attached, ...] | list[bdm.Attached] = ()
                    ) -> dict[str, Any]:
        return {
            "uuid": inst.uuid, "name": inst.name, "hostname": inst.hostname,
            "project_id": inst.project_id, "vcpus": inst.vcpus, "memory_mb": inst.memory_mb,
            "root_gb": inst.root_gb,
            "image": None if plan.volume_backed else _image_ref(plan.image),
            "volumes": [a.for_host() for a in attached],
            "kernel": _image_ref(plan.kernel), "ramdisk": _image_ref(plan.ramdisk),
            "cmdline": plan.cmdline, "image_url": self.svc.images.url, "token": plan.token,
            "config_drive": True, "user_data": inst.user_data,
            "metadata": dict(inst.metadata), "public_keys": plan.public_keys,
            "availability_zone": inst.availability_zone or
            self.svc.cfg.default_availability_zone,
            "launch_index": inst.launch_index, "vifs": plan.vifs.get(inst.uuid, []),
        }

    async def _fail(self, uuid: str, message: str, expected: str,
                    host: str | None = None) -> None:
        """Put a building instance into ERROR with a fault; release its claim."""
        await self._cleanup(uuid, host)
        done = self.svc.store.update_instance(uuid, expected_task_state=expected,
                                              vm_state="error", task_state=None,
                                              power_state=0, fault=fault(message))
        if done is None:
            self._lost_race(uuid)  # deleted while building: finish the delete

    async def _release(self, uuid: str) -> None:
        try:
            await self.svc.scheduler.release(uuid)
        except PeerError as exc:
            LOG.warning("could not release the allocations of %s: %s", uuid, exc)

    async def _cleanup(self, uuid: str, host: str | None) -> None:
        """Remove the instance from its host (if any) and release its allocations."""
        if host:
            try:
                await self.svc.computes.delete(await self.host_url(host), uuid)
            except PeerError as exc:
                LOG.warning("could not remove %s from %s: %s", uuid, host, exc)
        await self._release(uuid)

    async def _finish_deleted(self, uuid: str, host: str | None) -> None:
        """End a build that lost its compare-and-swap: to a delete, or to the timeout.

        A delete (``deleting``) is finished here; an instance the build timeout
        put in ERROR keeps its record and fault, but the guest goes.
        """
        await self._cleanup(uuid, host)
        self._lost_race(uuid)

    def _lost_race(self, uuid: str) -> None:
        """Mark deleted an instance whose build lost its compare-and-swap to a delete."""
        current = self.svc.store.get_instance(uuid, include_deleted=True)
        if current is not None and current.vm_state == "error" and current.task_state is None:
            return  # the build timeout's ERROR (fail_stale_builds) stays
        self.svc.store.mark_deleted(uuid)

    # --- power-state sync (Nova's _sync_power_states) -------------------------------------

    async def sync_forever(self, interval: float, build_timeout: float = 0.0) -> None:
        """Every ``interval`` seconds, record power states the hosts report.

        Builds older than ``build_timeout`` seconds (0: never) go to ERROR.
        """
        while True:
            await asyncio.sleep(interval)
            self.fail_stale_builds(build_timeout)
            try:
                await self.sync_power_states()
            except PeerError as exc:
                LOG.info("power-state sync skipped: %s", exc)

    def fail_stale_builds(self, timeout: float) -> int:
        """Put instances building for over ``timeout`` seconds in ERROR; return how many.

        Nova's ``instance_build_timeout`` check. Builds run in the api process,
        so one an api restart interrupted would otherwise stay in BUILD. The
        claim stays until the instance is deleted, as in Nova; a build still
        running loses its compare-and-swap and removes its guest.
        """
        if timeout <= 0:
            return 0
        cutoff = self.svc.store.clock() - timedelta(seconds=timeout)
        failed = 0
        for inst in self.svc.store.list_instances(None, where=[
                s.instances.c.vm_state == "building", s.instances.c.created_at < cutoff]):
            if inst.task_state not in ("scheduling", "spawning"):
                continue  # deleting: the delete finishes it
            done = self.svc.store.update_instance(
                inst.uuid, expected_task_state=inst.task_state, vm_state="error",
                task_state=None, power_state=0,
                fault=fault("Instance build timed out. Set to error state."))
            if done is not None:
                LOG.warning("instance %s: build timed out after %s s", inst.uuid, timeout)
                failed += 1
        return failed

    async def sync_power_states(self) -> int:
        """Align idle instances with their hosts; return how many changed.

        A guest that powered off by itself (or was destroyed behind the API's back)
        becomes ``stopped``/SHUTOFF, as Nova's sync does; an instance its host no
        longer has goes ``error``. Instances with a task in flight are left alone.
        """
        hosts = await self.svc.scheduler.hosts()
        changed = 0
        for name, host in hosts.items():
            url = (host.get("stats") or {}).get("compute_url")
            if not url:
                continue
            states = await self.svc.computes.instances(str(url))
            changed += await self._remove_orphans(name, str(url), states)
            for inst in self.svc.store.list_instances(None, where=[
                    s.instances.c.host == name, s.instances.c.task_state.is_(None),
                    s.instances.c.vm_state.in_(["active", "stopped"])]):
                changed += self._sync_one(inst, states.get(inst.uuid))
        return changed

    async def _remove_orphans(self, host: str, url: str, states: dict[str, int]) -> int:
        """Delete guests the host runs for instances that are deleted (or never existed)."""
        live = {i.uuid for i in self.svc.store.list_instances(
            None, where=[s.instances.c.host == host])}
        removed = 0
        for uuid in states:
            if uuid in live:
                continue
            record = self.svc.store.get_instance(uuid, include_deleted=True)
            if record is None or record.deleted:
                LOG.warning("removing orphan guest %s from %s", uuid, host)
                await self.svc.computes.delete(url, uuid)
                removed += 1
        return removed

    def _sync_one(self, inst: Instance, state: int | None) -> int:
        if state is None:
            done = self.svc.store.update_instance(
                inst.uuid, expected_task_state=None, vm_state="error", power_state=0,
                fault=fault(f"instance {inst.uuid} is missing on host {inst.host}"))
            return int(done is not None)
        if state == inst.power_state:
            return 0
        values: dict[str, Any] = {"power_state": state}
        if inst.vm_state == "active" and state in (SHUTDOWN, 0, 6):
            values["vm_state"] = "stopped"
        elif inst.vm_state == "stopped" and state == RUNNING:
            values["vm_state"] = "active"
        done = self.svc.store.update_instance(inst.uuid, expected_task_state=None, **values)
        return int(done is not None)

    # --- delete and power actions -------------------------------------------------------

    async def delete(self, inst: Instance) -> None:
        """Destroy the instance on its host, release its claim, mark it deleted."""
        try:
            if inst.host:
                await self.svc.computes.delete(await self.host_url(inst.host), inst.uuid)
        except PeerError as exc:
            self.svc.store.update_instance(inst.uuid, vm_state="error", task_state=None,
                                           fault=fault(f"delete failed: {exc}"))
            return
        await release_open_resize(self.migrations, self.svc.scheduler, inst.uuid)
        await self._release(inst.uuid)
        self.svc.store.mark_deleted(inst.uuid)

    async def power(self, inst: Instance, action: str, task_state: str, hard: bool = False,
                    action_id: int | None = None) -> None:
        """Run ``start``/``stop``/``reboot`` on the host and record the outcome."""
        t0 = utcnow()
        event = {"stop": "compute_stop_instance", "start": "compute_start_instance",
                 "reboot": "compute_reboot_instance"}[action]
        try:
            assert inst.host is not None
            state = await self.svc.computes.action(await self.host_url(inst.host), inst.uuid,
                                                   action, hard)
            if action_id is not None:
                self.svc.store.add_event(action_id, event, t0, utcnow(), "Success")
        except PeerError as exc:
            LOG.warning("%s of %s failed: %s", action, inst.uuid, exc)
            if action_id is not None:
                self.svc.store.add_event(action_id, event, t0, utcnow(), "Error", str(exc))
            self.svc.store.update_instance(inst.uuid, expected_task_state=task_state,
                                           task_state=None)
            return
        vm_state = "stopped" if action == "stop" else "active"
        if action != "stop" and state != RUNNING:
            vm_state = "stopped" if state == SHUTDOWN else "error"
        self.svc.store.update_instance(inst.uuid, expected_task_state=task_state,
                                       vm_state=vm_state, task_state=None, power_state=state)


def encode_user_data(raw: Any) -> str | None:
    """Validate base64 ``user_data`` (≤ 65535 bytes decoded); return it as given."""
    if raw is None:
        return None
    from nubis.api.shared.errors import BadRequestError

    if not isinstance(raw, str):
        raise BadRequestError("Invalid input for field/attribute user_data. must be a string")
    try:
        data = base64.b64decode(raw, validate=True)
    except (ValueError, TypeError):
        raise BadRequestError("User data needs to be valid base 64.") from None
    if len(data) > 65535:
        raise BadRequestError("User data too large. User data must be no larger than "
                              "65535 bytes once base64 decoded.")
    return raw
