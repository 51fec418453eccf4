"""The request spec: what ``select_destinations`` receives, validated into dataclasses.

The JSON shape follows Nova's ``RequestSpec`` (flavor with extra specs, image with
properties, availability zone, scheduler hints, server group, instance counts).
Resources are derived like Nova's ``resources_from_request_spec``: flavor sizes,
overridden by ``resources:<RC>`` extra specs; traits come from ``trait:<NAME>``
extra specs and ``traits_required``/``trait:<NAME>`` image properties.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nubis.daemons.scheduler import jsonquery
from nubis.daemons.scheduler.errors import BadRequest

#: Limits on request sizes (bad input must not cost unbounded work).
MAX_INSTANCES = 1000
MAX_LIST = 1000
MAX_EXTRA_SPECS = 256
MAX_AMOUNT = 1 << 50


@dataclass(frozen=True)
class Flavor:
    """The sizes and extra specs of the flavor being booted."""

    vcpus: int = 1
    memory_mb: int = 512
    root_gb: int = 1
    ephemeral_gb: int = 0
    swap: int = 0
    extra_specs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Image:
    """The image being booted (id and properties)."""

    id: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InstanceGroup:
    """A server group: policy, rules, member instances and the hosts they use."""

    uuid: str = ""
    policy: str = ""
    rules: Mapping[str, Any] = field(default_factory=dict)
    members: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestSpec:
    """One ``select_destinations`` request."""

    instance_uuids: tuple[str, ...]
    min_count: int
    project_id: str = ""
    user_id: str = ""
    flavor: Flavor = field(default_factory=Flavor)
    image: Image = field(default_factory=Image)
    availability_zone: str | None = None
    scheduler_hints: Mapping[str, Any] = field(default_factory=dict)
    instance_group: InstanceGroup | None = None
    ignore_hosts: tuple[str, ...] = ()
    #: Only these hosts may be chosen (Nova's requested destination: an admin's
    #: ``host``/``hypervisor_hostname`` or ``zone:host``); the filters still run.
    requested_hosts: tuple[str, ...] = ()
    #: Whether ``requested_hosts`` are forced (``zone:host``): as Nova does for a forced
    #: host, the resources still have to fit but the enabled filters are skipped.
    force_hosts: bool = False

    def hint(self, name: str) -> Any:
        """Return a scheduler hint (``None`` when absent), like Nova's get_scheduler_hint."""
        return self.scheduler_hints.get(name)

    def resources(self) -> dict[str, int]:
        """Return the resource amounts one instance needs (zero amounts dropped)."""
        f = self.flavor
        swap_gb = -(-f.swap // 1024)
        amounts = {"VCPU": f.vcpus, "MEMORY_MB": f.memory_mb,
                   "DISK_GB": f.root_gb + f.ephemeral_gb + swap_gb}
        for key, value in f.extra_specs.items():
            if key.startswith("resources:"):
                rc = key.split(":", 1)[1]
                amounts[rc] = _int(value, key, 0)
        return {rc: n for rc, n in amounts.items() if n > 0}

    def traits(self) -> tuple[frozenset[str], frozenset[str]]:
        """Return (required, forbidden) traits from flavor extra specs and the image."""
        required: set[str] = set()
        forbidden: set[str] = set()
        specs: dict[str, Any] = {}
        specs.update({k: v for k, v in self.image.properties.items()
                      if isinstance(k, str) and k.startswith("trait")})
        specs.update(self.flavor.extra_specs)
        for key, value in specs.items():
            if key.startswith("trait:") or key.startswith("traits:"):
                name = key.split(":", 1)[1]
                if value == "required":
                    required.add(name)
                elif value == "forbidden":
                    forbidden.add(name)
        for name in self.image.properties.get("traits_required", []) or []:
            required.add(str(name))
        return frozenset(required), frozenset(forbidden)


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise BadRequest(f"{where}: must be an integer")
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{where}: must be an integer (got {value!r})") from None
    if n < minimum or n > MAX_AMOUNT:
        raise BadRequest(f"{where}: must be between {minimum} and {MAX_AMOUNT}")
    return n


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: must be a boolean")
    return value


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise BadRequest(f"{where}: must be a list of at most {MAX_LIST} strings")
    if not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{where}: must be a list of strings")
    return tuple(value)


def _ident(value: Any, where: str, max_len: int) -> str:
    """Return an id-like string field; refuse what a database column cannot hold.

    PostgreSQL enforces column widths and refuses NUL characters (SQLite takes both).
    """
    text = str(value or "")
    if len(text) > max_len or "\x00" in text:
        raise BadRequest(f"{where}: must be at most {max_len} characters, without NUL")
    return text


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: must be an object")
    return value


def _flavor(data: Any) -> Flavor:
    d = _mapping(data, "flavor")
    specs = _mapping(d.get("extra_specs"), "flavor.extra_specs")
    if len(specs) > MAX_EXTRA_SPECS or not all(isinstance(v, str) for v in specs.values()):
        raise BadRequest("flavor.extra_specs: must map names to strings")
    return Flavor(
        vcpus=_int(d.get("vcpus", 1), "flavor.vcpus"),
        memory_mb=_int(d.get("memory_mb", 512), "flavor.memory_mb"),
        root_gb=_int(d.get("root_gb", 0), "flavor.root_gb"),
        ephemeral_gb=_int(d.get("ephemeral_gb", 0), "flavor.ephemeral_gb"),
        swap=_int(d.get("swap", 0) or 0, "flavor.swap"),
        extra_specs=dict(specs))


def _group(data: Any) -> InstanceGroup | None:
    if data is None:
        return None
    d = _mapping(data, "instance_group")
    policy = d.get("policy") or ""
    if not policy and isinstance(d.get("policies"), list) and d["policies"]:
        policy = d["policies"][0]
    if policy not in ("", "affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"):
        raise BadRequest(f"instance_group.policy: unknown policy {policy!r}")
    rules = _mapping(d.get("rules"), "instance_group.rules")
    if "max_server_per_host" in rules:
        rules = {**rules, "max_server_per_host": _int(
            rules["max_server_per_host"], "instance_group.rules.max_server_per_host", 1)}
    return InstanceGroup(uuid=str(d.get("uuid", "")), policy=policy, rules=rules,
                         members=_str_list(d.get("members"), "instance_group.members"),
                         hosts=_str_list(d.get("hosts"), "instance_group.hosts"))


def _counts(d: Mapping[str, Any]) -> tuple[tuple[str, ...], int]:
    uuids = tuple(_ident(u, "instance_uuids", 36)
                  for u in _str_list(d.get("instance_uuids"), "instance_uuids"))
    if uuids:
        max_count = len(uuids)
    else:
        max_count = _int(d.get("max_count", d.get("num_instances", 1)), "max_count", 1)
        if max_count > MAX_INSTANCES:
            raise BadRequest(f"max_count: at most {MAX_INSTANCES} instances per request")
        uuids = tuple(str(uuidlib.uuid4()) for _ in range(max_count))
    min_count = _int(d.get("min_count", max_count), "min_count", 1)
    if min_count > max_count:
        raise BadRequest("min_count: must not exceed max_count")
    return uuids, min_count


def parse_request_spec(data: Any) -> RequestSpec:
    """Validate a request-spec JSON object; raise BadRequest on any problem."""
    d = _mapping(data, "request_spec")
    uuids, min_count = _counts(d)
    image = _mapping(d.get("image"), "image")
    hints = _mapping(d.get("scheduler_hints"), "scheduler_hints")
    query = hints.get("query")
    if query is not None and not isinstance(query, str | list):
        raise BadRequest("scheduler_hints.query: must be a JSON string")
    if query:
        jsonquery.parse(query)  # reject bad queries up front, not per host
    group = _group(d.get("instance_group"))
    if group is not None:
        group = InstanceGroup(group.uuid, group.policy, group.rules,
                              tuple(dict.fromkeys(group.members + uuids)), group.hosts)
    az = d.get("availability_zone")
    if az is not None and not isinstance(az, str):
        raise BadRequest("availability_zone: must be a string")
    return RequestSpec(
        instance_uuids=uuids, min_count=min_count,
        project_id=_ident(d.get("project_id"), "project_id", 255),
        user_id=_ident(d.get("user_id"), "user_id", 255),
        flavor=_flavor(d.get("flavor")),
        image=Image(id=image.get("id"),
                    properties=_mapping(image.get("properties"), "image.properties")),
        availability_zone=az or None, scheduler_hints=hints, instance_group=group,
        ignore_hosts=_str_list(d.get("ignore_hosts"), "ignore_hosts"),
        requested_hosts=_str_list(d.get("requested_hosts"), "requested_hosts"),
        force_hosts=_flag(d.get("force_hosts"), "force_hosts"))

