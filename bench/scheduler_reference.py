"""A per-host reference scheduler written from Nova's filter/weigher semantics.

Plain Python objects and loops, one host at a time, like nova.scheduler: the
oracle the vectorized pass must agree with (same hosts, same order). Scalar
helpers (extra-spec operators, version predicates, JSON query interpreter) are
shared with the implementation and tested on their own.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nubis.daemons.scheduler import attributes as attrs
from nubis.daemons.scheduler import jsonquery
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.hoststate import Aggregate, HostFacts, Inventory
from nubis.daemons.scheduler.request import RequestSpec


@dataclass(eq=False)
class RefHost:
    """Nova's HostState, reduced to what the filters and weighers read."""

    host: str
    uuid: str
    inventories: dict[str, Inventory]
    used: dict[str, int]
    facts: HostFacts
    traits: frozenset[str]
    aggregates: list[Aggregate]
    instances: dict[str, bool] = field(default_factory=dict)
    num_instances: int = 0
    num_io_ops: int = 0
    last_seen: float = 0.0

    # Nova's HostState attributes -------------------------------------------------
    @property
    def free_ram_mb(self) -> int:
        inv = self.inventories.get("MEMORY_MB")
        return 0 if inv is None else inv.total - inv.reserved - self.used.get("MEMORY_MB", 0)

    @property
    def free_disk_mb(self) -> int:
        inv = self.inventories.get("DISK_GB")
        return 0 if inv is None else (inv.total - inv.reserved
                                      - self.used.get("DISK_GB", 0)) * 1024

    @property
    def total_usable_ram_mb(self) -> int:
        inv = self.inventories.get("MEMORY_MB")
        return 0 if inv is None else inv.total - inv.reserved

    @property
    def total_usable_disk_gb(self) -> int:
        inv = self.inventories.get("DISK_GB")
        return 0 if inv is None else inv.total - inv.reserved

    @property
    def vcpus_total(self) -> int:
        inv = self.inventories.get("VCPU")
        return 0 if inv is None else inv.total

    @property
    def vcpus_used(self) -> int:
        return self.used.get("VCPU", 0)

    @property
    def cpu_allocation_ratio(self) -> float:
        inv = self.inventories.get("VCPU")
        return 1.0 if inv is None else inv.allocation_ratio

    @property
    def failed_builds(self) -> int:
        return self.facts.failed_builds

    @property
    def hypervisor_version(self) -> int:
        return self.facts.hypervisor_version

    @property
    def hypervisor_type(self) -> str:
        return self.facts.hypervisor_type

    @property
    def nodename(self) -> str:
        return self.host

    @property
    def hypervisor_hostname(self) -> str:
        return self.host

    @property
    def cpu_info(self) -> dict[str, Any]:
        return dict(self.facts.cpu_info)

    @property
    def stats(self) -> dict[str, Any]:
        return dict(self.facts.stats)

    def attr(self, name: str) -> Any:
        """getattr restricted to the attributes a real HostState has."""
        if name not in attrs.HOST_ATTRIBUTES:
            return None
        return getattr(self, name, None)


def metadata_get_by_host(host: RefHost, key: str | None = None) -> dict[str, set[str]]:
    md: dict[str, set[str]] = {}
    for aggr in host.aggregates:
        if key is None or key in aggr.metadata:
            for k, v in aggr.metadata.items():
                md.setdefault(k, set()).update(x.strip() for x in v.split(","))
    return md


def values_from_key(host: RefHost, key: str) -> set[str]:
    return {a.metadata[key] for a in host.aggregates if key in a.metadata}


def validate_num_values(vals: set[str], default: Any, cast: Any) -> Any:
    if not vals:
        return default
    return min(cast(v) for v in vals)


@dataclass
class RefRequest:
    spec: RequestSpec
    config: SchedulerConfig
    now: float
    instance_uuid: str = ""
    group_hosts: list[str] = field(default_factory=list)
    group_members: list[str] = field(default_factory=list)


# -- placement ---------------------------------------------------------------------
def placement_passes(host: RefHost, rq: RefRequest) -> bool:
    for rc, amount in rq.spec.resources().items():
        inv = host.inventories.get(rc)
        if inv is None:
            return False
        if host.used.get(rc, 0) + amount > int((inv.total - inv.reserved) * inv.allocation_ratio):
            return False
        if amount < inv.min_unit or amount > inv.effective_max_unit:
            return False
        if amount % inv.step_size:
            return False
    required, forbidden = rq.spec.traits()
    if not required <= host.traits or forbidden & host.traits:
        return False
    return host.host not in rq.spec.ignore_hosts


# -- filters ------------------------------------------------------------------------
def compute_filter(host: RefHost, rq: RefRequest) -> bool:
    if not host.facts.enabled:
        return False
    return rq.now - host.last_seen <= rq.config.service_down_time


def az_filter(host: RefHost, rq: RefRequest) -> bool:
    az = rq.spec.availability_zone
    if not az:
        return True
    md = metadata_get_by_host(host, key="availability_zone")
    if "availability_zone" in md:
        return az in md["availability_zone"]
    return az == rq.config.default_availability_zone


def _get_capabilities(host: RefHost, scope: list[str]) -> Any:
    cap: Any = host
    for index in range(len(scope)):
        if isinstance(cap, str):
            try:
                import json
                cap = json.loads(cap)
            except ValueError:
                return None
        if isinstance(cap, RefHost):
            v = cap.attr(scope[index])
            cap = cap.stats.get(scope[index]) if v is None else v
        elif isinstance(cap, dict):
            cap = cap.get(scope[index])
        else:
            return None
        if cap is None:
            return None
    return cap


def capabilities_filter(host: RefHost, rq: RefRequest) -> bool:
    for key, req in rq.spec.flavor.extra_specs.items():
        scope = key.split(":")
        if len(scope) == 1:
            if host.attr(key) is None and key not in host.stats:
                continue
        elif scope[0] != "capabilities":
            continue
        else:
            del scope[0]
        cap = _get_capabilities(host, scope)
        if cap is None:
            return False
        if not attrs.match(str(cap), req):
            return False
    return True


def image_props_filter(host: RefHost, rq: RefRequest) -> bool:
    props = rq.spec.image.properties

    def prop(name: str, legacy: str) -> Any:
        return props[name] if name in props else props.get(legacy)
    checked = (attrs.canonical_arch(prop("hw_architecture", "architecture")),
               attrs.canonical_hv_type(prop("img_hv_type", "hypervisor_type")),
               attrs.canonical_vm_mode(prop("hw_vm_mode", "vm_mode")))
    if not any(checked):
        return True
    supp = host.facts.supported_instances
    if not supp:
        return False
    hv_version = host.hypervisor_version
    for inst in supp:
        if all(not i or i in inst for i in checked):
            required = props.get("img_hv_requested_version")
            if not (hv_version and required):
                return True
            if attrs.version_satisfied(attrs.version_to_str(hv_version), str(required)):
                return True
    return False


def agg_extra_specs_filter(host: RefHost, rq: RefRequest) -> bool:
    specs = rq.spec.flavor.extra_specs
    if not specs:
        return True
    md = metadata_get_by_host(host)
    for key, req in specs.items():
        scope = key.split(":", 1)
        if len(scope) > 1:
            if scope[0] != "aggregate_instance_extra_specs":
                continue
            del scope[0]
        vals = md.get(scope[0])
        if not vals:
            return False
        for v in vals:
            if attrs.match(v, req):
                break
        else:
            return False
    return True


def multitenancy_filter(host: RefHost, rq: RefRequest) -> bool:
    md = metadata_get_by_host(host)
    if md != {}:
        configured: set[str] = set()
        for name, values in md.items():
            if name.startswith("filter_tenant_id"):
                configured.update(values)
        if configured and rq.spec.project_id not in configured:
            return False
    return True


def _policy(rq: RefRequest) -> str | None:
    g = rq.spec.instance_group
    return g.policy if g else None


def affinity_filter(host: RefHost, rq: RefRequest) -> bool:
    if _policy(rq) != "affinity":
        return True
    if not rq.group_hosts:
        return True
    return host.host in rq.group_hosts


def anti_affinity_filter(host: RefHost, rq: RefRequest) -> bool:
    if _policy(rq) != "anti-affinity":
        return True
    if rq.instance_uuid in host.instances:
        return True
    on_host = set(host.instances) & set(rq.group_members)
    assert rq.spec.instance_group is not None
    rules = rq.spec.instance_group.rules
    limit = rules.get("max_server_per_host", 1) if rules else 1
    return len(on_host) < limit


def _uuids(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def same_host_filter(host: RefHost, rq: RefRequest) -> bool:
    uuids = rq.spec.hint("same_host")
    if uuids:
        return bool(set(host.instances) & set(_uuids(uuids)))
    return True


def different_host_filter(host: RefHost, rq: RefRequest) -> bool:
    uuids = rq.spec.hint("different_host")
    if uuids:
        return not (set(host.instances) & set(_uuids(uuids)))
    return True


def num_instances_filter(host: RefHost, rq: RefRequest) -> bool:
    return host.num_instances < rq.config.max_instances_per_host


def agg_num_instances_filter(host: RefHost, rq: RefRequest) -> bool:
    default = rq.config.max_instances_per_host
    try:
        limit: int = validate_num_values(values_from_key(host, "max_instances_per_host"),
                                         default, int)
    except ValueError:
        limit = default
    return host.num_instances < limit


def io_ops_filter(host: RefHost, rq: RefRequest) -> bool:
    return host.num_io_ops < rq.config.max_io_ops_per_host


def agg_io_ops_filter(host: RefHost, rq: RefRequest) -> bool:
    default = rq.config.max_io_ops_per_host
    try:
        limit: int = validate_num_values(values_from_key(host, "max_io_ops_per_host"),
                                         default, int)
    except ValueError:
        limit = default
    return host.num_io_ops < limit


def isolated_hosts_filter(host: RefHost, rq: RefRequest) -> bool:
    cfg = rq.config
    restrict = cfg.restrict_isolated_hosts_to_isolated_images
    if not cfg.isolated_images:
        return (not restrict) or (host.host not in cfg.isolated_hosts)
    image_isolated = rq.spec.image.id in cfg.isolated_images
    host_isolated = host.host in cfg.isolated_hosts
    if restrict:
        return image_isolated == host_isolated
    return (not image_isolated) or host_isolated


def json_filter(host: RefHost, rq: RefRequest) -> bool:
    query = rq.spec.hint("query")
    if not query:
        return True

    def lookup(string: str) -> Any:
        path = string[1:].split(".")
        obj = host.attr(path[0])
        if obj is None:
            return None
        for item in path[1:]:
            obj = obj.get(item) if isinstance(obj, dict) else None
            if obj is None:
                return None
        return obj
    return jsonquery.host_passes(jsonquery.parse(query), lookup)


REF_FILTERS = {
    "AllHostsFilter": lambda h, rq: True,
    "ComputeFilter": compute_filter,
    "AvailabilityZoneFilter": az_filter,
    "ComputeCapabilitiesFilter": capabilities_filter,
    "ImagePropertiesFilter": image_props_filter,
    "AggregateInstanceExtraSpecsFilter": agg_extra_specs_filter,
    "AggregateMultiTenancyIsolation": multitenancy_filter,
    "ServerGroupAffinityFilter": affinity_filter,
    "ServerGroupAntiAffinityFilter": anti_affinity_filter,
    "SameHostFilter": same_host_filter,
    "DifferentHostFilter": different_host_filter,
    "NumInstancesFilter": num_instances_filter,
    "AggregateNumInstancesFilter": agg_num_instances_filter,
    "IoOpsFilter": io_ops_filter,
    "AggregateIoOpsFilter": agg_io_ops_filter,
    "IsolatedHostsFilter": isolated_hosts_filter,
    "JsonFilter": json_filter,
}


# -- weighers -------------------------------------------------------------------------
def _members_on(host: RefHost, rq: RefRequest, policy: str) -> int:
    if _policy(rq) != policy:
        return 0
    return len(set(host.instances) & set(rq.group_members))


REF_WEIGHERS: list[tuple[str, Callable[[RefHost, RefRequest], float]]] = [
    ("ram_weight_multiplier", lambda h, rq: h.free_ram_mb),
    ("cpu_weight_multiplier",
     lambda h, rq: h.vcpus_total * h.cpu_allocation_ratio - h.vcpus_used),
    ("disk_weight_multiplier", lambda h, rq: h.free_disk_mb),
    ("io_ops_weight_multiplier", lambda h, rq: h.num_io_ops),
    ("num_instances_weight_multiplier", lambda h, rq: h.num_instances),
    ("soft_affinity_weight_multiplier", lambda h, rq: _members_on(h, rq, "soft-affinity")),
    ("soft_anti_affinity_weight_multiplier",
     lambda h, rq: -1 * _members_on(h, rq, "soft-anti-affinity")),
    ("build_failure_weight_multiplier", lambda h, rq: -1 * h.failed_builds),
]


def normalize(weights: list[float]) -> list[float]:
    if not weights:
        return []
    maxval = float(max(weights))
    minval = float(min(weights))
    if minval == maxval:
        return [0] * len(weights)
    range_ = maxval - minval
    return [(i - minval) / range_ for i in weights]


def weight_multiplier(host: RefHost, name: str, default: float) -> float:
    try:
        return float(validate_num_values(values_from_key(host, name), default, float))
    except ValueError:
        return default


def weigh(hosts: list[RefHost], rq: RefRequest) -> list[tuple[RefHost, float]]:
    weights = [0.0] * len(hosts)
    if len(hosts) <= 1:
        return list(zip(hosts, weights, strict=True))
    for option, fn in REF_WEIGHERS:
        normalized = normalize([fn(h, rq) for h in hosts])
        default = float(getattr(rq.config, option))
        for i, w in enumerate(normalized):
            weights[i] += weight_multiplier(hosts[i], option, default) * w
    return sorted(zip(hosts, weights, strict=True), key=lambda x: x[1], reverse=True)


# -- the scheduling loop ------------------------------------------------------------------
def schedule(hosts: list[RefHost], spec: RequestSpec, config: SchedulerConfig, now: float,
             rng: random.Random) -> list[tuple[str, list[str]]] | None:
    """Return (host, alternates) per instance, or None if fewer than min_count fit."""
    rq = RefRequest(spec, config, now)
    group = spec.instance_group
    if group is not None:
        rq.group_members = list(group.members)
        rq.group_hosts = list(group.hosts)
        for h in hosts:
            if set(h.instances) & set(group.members) and h.host not in rq.group_hosts:
                rq.group_hosts.append(h.host)
    out: list[tuple[str, list[str]]] = []
    consumed: list[tuple[RefHost, str]] = []
    for uuid in spec.instance_uuids:
        rq.instance_uuid = uuid
        cands = [h for h in hosts if placement_passes(h, rq)]
        for name in config.enabled_filters:
            cands = [h for h in cands if REF_FILTERS[name](h, rq)]
            if not cands:
                break
        if not cands:
            break
        weighed = [h for h, _ in weigh(cands, rq)]
        subset = weighed[: config.host_subset_size]
        chosen = subset[rng.randrange(len(subset))]
        weighed.remove(chosen)
        out.append((chosen.host, [h.host for h in weighed[: config.max_attempts - 1]]))
        for rc, amount in spec.resources().items():
            chosen.used[rc] = chosen.used.get(rc, 0) + amount
        chosen.instances[uuid] = True
        chosen.num_instances += 1
        chosen.num_io_ops += 1
        consumed.append((chosen, uuid))
        if chosen.host not in rq.group_hosts:
            rq.group_hosts.append(chosen.host)
    if len(out) < spec.min_count:
        return None
    return out


# -- building the same cloud for both sides ------------------------------------------------
@dataclass(frozen=True)
class HostDesc:
    """One host of a generated cloud."""

    name: str
    uuid: str
    inventories: dict[str, Inventory]
    used: dict[str, int]
    facts: HostFacts
    traits: frozenset[str] = frozenset()
    instances: tuple[str, ...] = ()
    last_seen: float = 0.0


@dataclass(frozen=True)
class Cloud:
    """Hosts plus Nova host aggregates."""

    hosts: list[HostDesc]
    aggregates: list[Aggregate] = field(default_factory=list)


def build_state(cloud: Cloud) -> Any:
    """Return a HostState holding ``cloud``."""
    from nubis.daemons.scheduler.hoststate import HostState

    st = HostState()
    for agg in cloud.aggregates:
        st.set_aggregate(agg)
    for h in cloud.hosts:
        row = st.add_host(h.name, h.uuid)
        st.set_inventories(row, h.inventories)
        st.set_usage(row, h.used)
        st.set_traits(row, h.traits)
        st.set_facts(row, h.facts, h.last_seen)
        for uuid in h.instances:
            st.add_instance(row, uuid, {}, io_ops=False)
    return st


def build_ref(cloud: Cloud) -> list[RefHost]:
    """Return the reference hosts of ``cloud``."""
    out = []
    for h in cloud.hosts:
        aggs = sorted((a for a in cloud.aggregates if h.name in a.hosts), key=lambda a: a.uuid)
        out.append(RefHost(host=h.name, uuid=h.uuid, inventories=dict(h.inventories),
                           used=dict(h.used), facts=h.facts, traits=h.traits,
                           aggregates=aggs, instances={u: True for u in h.instances},
                           num_instances=len(h.instances), num_io_ops=h.facts.num_io_ops,
                           last_seen=h.last_seen))
    return out
