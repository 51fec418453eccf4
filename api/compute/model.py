"""Compute records as frozen dataclasses, built from database rows at the edge."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Nova's ``power_state`` codes.
NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED = 0, 1, 3, 4, 6, 7


@dataclass(frozen=True)
class Flavor:
    """A flavor (sizes, visibility, extra specs)."""

    id: int
    flavorid: str
    name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int
    swap: int
    rxtx_factor: float
    is_public: bool
    disabled: bool
    description: str | None
    extra_specs: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Any, specs: Mapping[str, str]) -> Flavor:
        """Build from a ``compute_flavor`` row and its extra specs."""
        return cls(row["id"], row["flavorid"], row["name"], row["vcpus"], row["memory_mb"],
                   row["root_gb"], row["ephemeral_gb"], row["swap"], row["rxtx_factor"],
                   bool(row["is_public"]), bool(row["disabled"]), row["description"],
                   dict(specs))

    def snapshot(self) -> dict[str, Any]:
        """Return what an instance keeps of its flavor (Nova embeds this from 2.47)."""
        return {"id": self.flavorid, "name": self.name, "vcpus": self.vcpus,
                "ram": self.memory_mb, "disk": self.root_gb,
                "ephemeral": self.ephemeral_gb, "swap": self.swap,
                "extra_specs": dict(self.extra_specs)}


@dataclass(frozen=True)
class Keypair:
    """An SSH (or x509) public key of one user."""

    id: int
    user_id: str
    name: str
    public_key: str
    fingerprint: str
    type: str
    created_at: datetime


@dataclass(frozen=True)
class Instance:
    """A server as the compute API records it."""

    uuid: str
    project_id: str
    user_id: str
    name: str
    hostname: str
    description: str | None
    image_ref: str
    kernel_id: str
    ramdisk_id: str
    flavor: Mapping[str, Any]
    vcpus: int
    memory_mb: int
    root_gb: int
    vm_state: str
    task_state: str | None
    power_state: int
    host: str | None
    node: str | None
    key_name: str | None
    key_data: str | None
    user_data: str | None
    metadata: Mapping[str, str]
    tags: tuple[str, ...]
    fault: Mapping[str, Any] | None
    config_drive: bool
    availability_zone: str | None
    reservation_id: str
    launch_index: int
    locked: bool
    created_at: datetime
    updated_at: datetime
    launched_at: datetime | None
    terminated_at: datetime | None
    deleted: bool

    @classmethod
    def from_row(cls, row: Any) -> Instance:
        """Build from a ``compute_instance`` row."""
        return cls(
            uuid=row["uuid"], project_id=row["project_id"], user_id=row["user_id"],
            name=row["name"], hostname=row["hostname"], description=row["description"],
            image_ref=row["image_ref"] or "", kernel_id=row["kernel_id"] or "",
            ramdisk_id=row["ramdisk_id"] or "", flavor=json.loads(row["flavor"]),
            vcpus=row["vcpus"], memory_mb=row["memory_mb"], root_gb=row["root_gb"],
            vm_state=row["vm_state"], task_state=row["task_state"],
            power_state=row["power_state"], host=row["host"], node=row["node"],
            key_name=row["key_name"], key_data=row["key_data"], user_data=row["user_data"],
            metadata=json.loads(row["metadata"] or "{}"),
            tags=tuple(json.loads(row["tags"] or "[]")),
            fault=json.loads(row["fault"]) if row["fault"] else None,
            config_drive=bool(row["config_drive"]),
            availability_zone=row["availability_zone"],
            reservation_id=row["reservation_id"], launch_index=row["launch_index"],
            locked=bool(row["locked"]), created_at=row["created_at"],
            updated_at=row["updated_at"], launched_at=row["launched_at"],
            terminated_at=row["terminated_at"], deleted=bool(row["deleted"]))

    @property
    def status(self) -> str:
        """Return the API status Nova derives from vm_state and task_state."""
        return server_status(self.vm_state, self.task_state)


_TASK_STATUS = {
    "active": {"rebooting": "REBOOT", "reboot_pending": "REBOOT", "reboot_started": "REBOOT",
               "rebooting_hard": "HARD_REBOOT", "reboot_pending_hard": "HARD_REBOOT",
               "reboot_started_hard": "HARD_REBOOT", "rebuilding": "REBUILD",
               "resize_prep": "RESIZE", "resize_migrating": "RESIZE",
               "resize_migrated": "RESIZE", "resize_finish": "RESIZE",
               "image_snapshot": "ACTIVE"},
    "stopped": {"rebooting_hard": "HARD_REBOOT", "rebuilding": "REBUILD",
                "resize_prep": "RESIZE", "resize_migrating": "RESIZE",
                "resize_migrated": "RESIZE", "resize_finish": "RESIZE"},
    "resized": {"resize_reverting": "REVERT_RESIZE"},
    "error": {"rebuilding": "REBUILD"},
}
_VM_STATUS = {"active": "ACTIVE", "building": "BUILD", "stopped": "SHUTOFF",
              "paused": "PAUSED", "suspended": "SUSPENDED", "error": "ERROR",
              "deleted": "DELETED", "soft-delete": "SOFT_DELETED", "shelved": "SHELVED",
              "shelved_offloaded": "SHELVED_OFFLOADED", "resized": "VERIFY_RESIZE",
              "rescued": "RESCUE"}


def server_status(vm_state: str, task_state: str | None) -> str:
    """Return Nova's status for a (vm_state, task_state) pair."""
    if task_state == "deleting" and vm_state != "error":
        return "ACTIVE" if vm_state == "active" else _VM_STATUS.get(vm_state, "UNKNOWN")
    by_task = _TASK_STATUS.get(vm_state, {})
    if task_state and task_state in by_task:
        return by_task[task_state]
    return _VM_STATUS.get(vm_state, "UNKNOWN")


#: API status -> vm_states that show it (for the ``status`` list filter).
STATUS_VM_STATES: dict[str, tuple[str, ...]] = {}
for _vm, _st in _VM_STATUS.items():
    STATUS_VM_STATES.setdefault(_st, ())
    STATUS_VM_STATES[_st] += (_vm,)
