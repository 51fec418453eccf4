"""Host filters: each one vectorized boolean mask over all hosts, Nova's names and meaning.

A filter is a function ``(ctx: FilterContext) -> bool array of length n`` registered
by name with :func:`host_filter`; ``enabled_filters`` picks and orders them.
Placement's part of Nova's scheduling (resource fit with ``min_unit``,
``max_unit``, ``step_size``, required/forbidden traits) runs first as
*pre-filters* named after the legacy filters they replace (``RamFilter-equivalent``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from nubis.common.errors import ConfigError
from nubis.daemons.scheduler import attributes as attrs
from nubis.daemons.scheduler import jsonquery
from nubis.daemons.scheduler.config import SchedulerConfig
from nubis.daemons.scheduler.hoststate import Aggregate, BoolArray, HostState
from nubis.daemons.scheduler.request import RequestSpec


@dataclass
class FilterContext:
    """What one filter/weigher pass sees: hosts, the request, config, per-request state."""

    state: HostState
    spec: RequestSpec
    config: SchedulerConfig
    now: float
    #: The instance being placed now (one pass per instance).
    instance_uuid: str = ""
    #: Server-group hosts and members, updated as instances of the request land.
    group_hosts: set[str] = field(default_factory=set)
    group_members: set[str] = field(default_factory=set)
    rng: random.Random = field(default_factory=random.Random)
    _memo: dict[str, Any] = field(default_factory=dict)

    def memo(self, key: str, fn: Callable[[], Any]) -> Any:
        """Compute ``fn()`` once per context (for data that is fixed per request)."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def agg_map(self, fn: Callable[[list[Aggregate]], Any], dtype: Any = np.bool_) -> Any:
        """Evaluate ``fn(aggregates of the host)`` once per distinct aggregate set."""
        st = self.state
        return st.aggs.map(lambda sig: fn(st.aggregates_of(sig)), st.n, dtype)

    def agg_mask(self, fn: Callable[[list[Aggregate]], bool],
                 key: Hashable = None) -> BoolArray | None:
        """Like :meth:`agg_map` for predicates (``None``: every host passes).

        ``key`` names what ``fn`` depends on besides the aggregates (its table is
        then cached until an aggregate changes; see :meth:`SigColumn.mask`).
        """
        st = self.state
        return st.aggs.mask(lambda sig: fn(st.aggregates_of(sig)), st.n, key)

    def policy(self) -> str:
        """Return the server group policy of the request ('' without a group)."""
        group = self.spec.instance_group
        return group.policy if group is not None else ""


#: A filter returns a mask over all rows, or ``None`` when every host passes.
Filter = Callable[[FilterContext], BoolArray | None]


def land(a: BoolArray | None, b: BoolArray | None) -> BoolArray | None:
    """AND two masks where ``None`` means all-true."""
    if a is None:
        return b
    if b is None:
        return a
    return a & b
FILTERS: dict[str, Filter] = {}


def host_filter(name: str) -> Callable[[Filter], Filter]:
    """Register a filter function under Nova's class name."""
    def deco(fn: Filter) -> Filter:
        FILTERS[name] = fn
        return fn
    return deco


def resolve_filters(names: tuple[str, ...]) -> list[tuple[str, Filter]]:
    """Return the enabled filters in order; unknown names are a ConfigError."""
    out = []
    for name in names:
        fn = FILTERS.get(name)
        if fn is None:
            known = ", ".join(sorted(FILTERS))
            raise ConfigError(f"config.toml: [scheduler] enabled_filters: unknown filter "
                              f"{name!r} (known: {known})")
        out.append((name, fn))
    return out


# -- aggregate metadata helpers (nova.scheduler.filters.utils) -------------------------
def metadata_by_host(aggs: list[Aggregate], key: str | None = None) -> dict[str, set[str]]:
    """Merge aggregate metadata into sets of comma-split values (aggregate_metadata_get_by_host)."""
    out: dict[str, set[str]] = {}
    for agg in aggs:
        if key is None or key in agg.metadata:
            for k, v in agg.metadata.items():
                out.setdefault(k, set()).update(x.strip() for x in v.split(","))
    return out


def values_from_key(aggs: list[Aggregate], key: str) -> set[str]:
    """Return the raw values of ``key`` across aggregates (aggregate_values_from_key)."""
    return {a.metadata[key] for a in aggs if key in a.metadata}


def min_num_value(vals: set[str], default: Any, cast: Callable[[str], Any]) -> Any:
    """Return the smallest value cast with ``cast``; ``default`` if none or unparsable."""
    if not vals:
        return default
    try:
        return min(cast(v) for v in vals)
    except ValueError:
        return default


def any_aggregate_has(state: HostState, key: str) -> bool:
    """Tell whether any aggregate carries metadata ``key``."""
    return key in state.aggregate_keys()


# -- pre-filters: what Nova asks Placement -----------------------------------------------
LEGACY_NAMES = {"VCPU": "CoreFilter-equivalent", "MEMORY_MB": "RamFilter-equivalent",
                "DISK_GB": "DiskFilter-equivalent"}


def prefilters(spec: RequestSpec) -> list[tuple[str, Filter]]:
    """Return the placement-side filters of a request (resources, traits, ignore_hosts)."""
    out: list[tuple[str, Filter]] = []
    for rc, amount in spec.resources().items():
        name = LEGACY_NAMES.get(rc, f"Placement {rc}")
        out.append((name, _fit(rc, amount)))
    return out + placement_filters(spec)


def placement_filters(spec: RequestSpec) -> list[tuple[str, Filter]]:
    """Return the placement-side filters other than the resource fit (traits, hosts)."""
    out: list[tuple[str, Filter]] = []
    required, forbidden = spec.traits()
    if required:
        out.append(("Placement required traits",
                    lambda ctx: ctx.state.traits.mask(lambda t: required <= t, ctx.state.n,
                                                      ("required", required))))
    if forbidden:
        out.append(("Placement forbidden traits",
                    lambda ctx: ctx.state.traits.mask(lambda t: not (forbidden & t),
                                                      ctx.state.n, ("forbidden", forbidden))))
    if spec.ignore_hosts:
        out.append(("ignore_hosts", _ignore_hosts))
    if spec.requested_hosts:
        out.append(("requested destination", _requested_hosts))
    return out


def _fit(rc: str, amount: int) -> Filter:
    def fit(ctx: FilterContext) -> BoolArray:
        cols = ctx.state.resources.get(rc)
        if cols is None:
            return np.zeros(ctx.state.n, dtype=np.bool_)
        return cols.fits(amount, ctx.state.n)
    return fit


def _rows_mask(state: HostState, rows: list[int]) -> BoolArray:
    mask = np.zeros(state.n, dtype=np.bool_)
    if rows:
        mask[rows] = True
    return mask


def _ignore_hosts(ctx: FilterContext) -> BoolArray:
    rows = [ctx.state.row_of[h] for h in ctx.spec.ignore_hosts if h in ctx.state.row_of]
    return ~_rows_mask(ctx.state, rows)


def _requested_hosts(ctx: FilterContext) -> BoolArray:
    rows = [ctx.state.row_of[h] for h in ctx.spec.requested_hosts if h in ctx.state.row_of]
    return _rows_mask(ctx.state, rows)


# -- Nova's filters ------------------------------------------------------------------------
@host_filter("AllHostsFilter")
def all_hosts(ctx: FilterContext) -> BoolArray | None:
    """Pass every host."""
    return None


@host_filter("ComputeFilter")
def compute_filter(ctx: FilterContext) -> BoolArray | None:
    """Pass hosts whose compute service is enabled and up (reported recently)."""
    if ctx.state.n == 0:
        return None
    return ctx.state.up_mask(ctx.now, ctx.config.service_down_time)


@host_filter("AvailabilityZoneFilter")
def availability_zone(ctx: FilterContext) -> BoolArray | None:
    """Pass hosts in the requested AZ (aggregate ``availability_zone`` or the default)."""
    az = ctx.spec.availability_zone
    if not az:
        return all_hosts(ctx)
    default = ctx.config.default_availability_zone

    def passes(aggs: list[Aggregate]) -> bool:
        md = metadata_by_host(aggs, "availability_zone")
        if "availability_zone" in md:
            return az in md["availability_zone"]
        return az == default
    return ctx.agg_mask(passes, ("az", repr(az), default))


@host_filter("ComputeCapabilitiesFilter")
def compute_capabilities(ctx: FilterContext) -> BoolArray | None:
    """Match ``capabilities:`` (and unscoped) flavor extra specs against host attributes."""
    st = ctx.state
    mask: BoolArray | None = None
    for key, req in ctx.spec.flavor.extra_specs.items():
        scope = key.split(":")
        if len(scope) == 1:
            mask = land(mask, _unscoped_capability(st, key, req))
            continue
        if scope[0] != "capabilities":
            continue
        mask = land(mask, capability_mask(st, scope[1:], req))
    return mask


def capability_mask(st: HostState, scope: list[str], req: str) -> BoolArray:
    """Return where the capability at ``scope`` matches ``req`` (None never matches)."""
    words = req.split()
    if len(scope) == 1 and len(words) == 2 and words[0] in attrs.NUMERIC_OPS:
        column = attrs.numeric_column(st, scope[0])
        if column is not None:
            try:
                bound = float(words[1])
            except ValueError:
                return np.zeros(st.n, dtype=np.bool_)
            # PERF: numeric comparison over the column, no per-value loop.
            return attrs.NUMERIC_OPS[words[0]](column.astype(np.float64), bound)  # type: ignore[no-any-return]
    source = attrs.sig_attribute(st, scope, stats_fallback=True)
    if source is not None:
        # PERF: cached broadcast per distinct value table (``python -m nubis.bench scheduler``).
        sig, values = source
        return sig.broadcast(_matches(values, req), st.n)
    codes, table = attrs.resolve(st, scope, stats_fallback=True)
    return _matches(table, req)[codes]  # type: ignore[no-any-return]


def _matches(table: list[Any], req: str) -> BoolArray:
    return np.fromiter((cap is not None and attrs.match(str(cap), req) for cap in table),
                       dtype=np.bool_, count=len(table))


def _unscoped_capability(st: HostState, key: str, req: str) -> BoolArray | None:
    """An unscoped key is checked only on hosts that have it (attribute or stat)."""
    if key in attrs.HOST_ATTRIBUTES:
        return capability_mask(st, [key], req)
    has = st.stats.map(lambda s: key in s, st.n)
    if not has.any():
        return None
    return ~has | capability_mask(st, [key], req)


IMAGE_PROP_ALIASES = {"hw_architecture": "architecture", "img_hv_type": "hypervisor_type",
                      "hw_vm_mode": "vm_mode"}


def image_prop(props: Mapping[str, Any], name: str) -> Any:
    """Return an image property, accepting Glance's legacy name too."""
    if name in props:
        return props[name]
    return props.get(IMAGE_PROP_ALIASES.get(name, ""))


@host_filter("ImagePropertiesFilter")
def image_properties(ctx: FilterContext) -> BoolArray | None:
    """Pass hosts whose supported instances match the image's arch/hv type/vm mode."""
    props = ctx.spec.image.properties
    wanted = (attrs.canonical_arch(image_prop(props, "hw_architecture")),
              attrs.canonical_hv_type(image_prop(props, "img_hv_type")),
              attrs.canonical_vm_mode(image_prop(props, "hw_vm_mode")))
    if not any(wanted):
        return all_hosts(ctx)
    required_version = props.get("img_hv_requested_version")

    def passes(sig: tuple[tuple[tuple[str, str, str], ...], int]) -> bool:
        supported, hv_version = sig
        for triple in supported:
            if all(not w or w in triple for w in wanted):
                if not (hv_version and required_version):
                    return True
                if attrs.version_satisfied(attrs.version_to_str(hv_version),
                                           str(required_version)):
                    return True
        return False
    return ctx.state.images.mask(passes, ctx.state.n, ("image", wanted,
                                                       repr(required_version)))


@host_filter("AggregateInstanceExtraSpecsFilter")
def aggregate_instance_extra_specs(ctx: FilterContext) -> BoolArray | None:
    """Match unscoped/``aggregate_instance_extra_specs:`` specs against aggregate metadata."""
    specs = ctx.spec.flavor.extra_specs
    if not specs:
        return all_hosts(ctx)
    checks = []
    for key, req in specs.items():
        scope = key.split(":", 1)
        if len(scope) > 1:
            if scope[0] != "aggregate_instance_extra_specs":
                continue
            del scope[0]
        checks.append((scope[0], req))

    def passes(aggs: list[Aggregate]) -> bool:
        md = metadata_by_host(aggs)
        for key, req in checks:
            vals = md.get(key)
            if not vals or not any(attrs.match(v, req) for v in vals):
                return False
        return True
    return ctx.agg_mask(passes, ("extra_specs", repr(checks)))


@host_filter("AggregateMultiTenancyIsolation")
def aggregate_multitenancy(ctx: FilterContext) -> BoolArray | None:
    """Hosts in aggregates with ``filter_tenant_id*`` take only those projects."""
    project = ctx.spec.project_id

    def passes(aggs: list[Aggregate]) -> bool:
        configured: set[str] = set()
        for name, values in metadata_by_host(aggs).items():
            if name.startswith("filter_tenant_id"):
                configured |= values
        return not configured or project in configured
    return ctx.agg_mask(passes, ("tenancy", repr(project)))


def _group_hosts_mask(ctx: FilterContext) -> BoolArray:
    rows = [ctx.state.row_of[h] for h in ctx.group_hosts if h in ctx.state.row_of]
    return _rows_mask(ctx.state, rows)


@host_filter("ServerGroupAffinityFilter")
def group_affinity(ctx: FilterContext) -> BoolArray | None:
    """With policy ``affinity``, pass only hosts already used by the group."""
    if ctx.policy() != "affinity" or not ctx.group_hosts:
        return all_hosts(ctx)
    return _group_hosts_mask(ctx)


@host_filter("ServerGroupAntiAffinityFilter")
def group_anti_affinity(ctx: FilterContext) -> BoolArray | None:
    """With ``anti-affinity``, pass hosts with fewer than max_server_per_host members."""
    group = ctx.spec.instance_group
    if group is None or group.policy != "anti-affinity":
        return all_hosts(ctx)
    limit = int(group.rules.get("max_server_per_host", 1))
    st = ctx.state
    counts = np.zeros(st.n, dtype=np.int64)
    for member in ctx.group_members:
        row = st.instance_row.get(member)
        if row is not None:
            counts[row] += 1
    mask: BoolArray = counts < limit
    own = st.instance_row.get(ctx.instance_uuid)
    if own is not None:
        mask[own] = True
    return mask


def _hint_list(value: Any) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


@host_filter("SameHostFilter")
def same_host(ctx: FilterContext) -> BoolArray | None:
    """Pass hosts running any instance named in the ``same_host`` hint."""
    uuids = _hint_list(ctx.spec.hint("same_host"))
    if not uuids:
        return all_hosts(ctx)
    return _rows_mask(ctx.state, ctx.state.rows_of_instances(uuids))


@host_filter("DifferentHostFilter")
def different_host(ctx: FilterContext) -> BoolArray | None:
    """Pass hosts running none of the instances named in ``different_host``."""
    uuids = _hint_list(ctx.spec.hint("different_host"))
    if not uuids:
        return all_hosts(ctx)
    return ~_rows_mask(ctx.state, ctx.state.rows_of_instances(uuids))


@host_filter("NumInstancesFilter")
def num_instances(ctx: FilterContext) -> BoolArray | None:
    """Pass hosts with fewer than ``max_instances_per_host`` instances."""
    return _count_below(ctx, "num_instances", ctx.config.max_instances_per_host)


def _count_below(ctx: FilterContext, column: str, limit: Any) -> BoolArray | None:
    """Return where count column ``column`` is below ``limit`` (scalar or per host).

    PERF: a scalar limit above the column's remembered upper bound passes every
    host in O(1) (``python -m nubis.bench scheduler``).
    """
    if isinstance(limit, int) and ctx.state.all_below(column, limit):
        return None
    return below(getattr(ctx.state, column)[: ctx.state.n], limit)


def below(column: npt.NDArray[np.int64], limit: Any) -> BoolArray | None:
    """Return ``column < limit`` (``None`` when every host is below a scalar limit).

    PERF: one max() instead of compare + count (``python -m nubis.bench scheduler``).
    """
    if isinstance(limit, int) and (len(column) == 0 or int(column.max()) < limit):
        return None
    return column < limit  # type: ignore[no-any-return]


def _aggregate_limit(ctx: FilterContext, key: str, default: int) -> Any:
    if not any_aggregate_has(ctx.state, key):
        return default
    return ctx.agg_map(lambda aggs: min_num_value(values_from_key(aggs, key), default, int),
                       np.int64)


@host_filter("AggregateNumInstancesFilter")
def aggregate_num_instances(ctx: FilterContext) -> BoolArray | None:
    """Like NumInstancesFilter, with per-aggregate ``max_instances_per_host`` (minimum)."""
    limit = _aggregate_limit(ctx, "max_instances_per_host", ctx.config.max_instances_per_host)
    return _count_below(ctx, "num_instances", limit)


@host_filter("IoOpsFilter")
def io_ops(ctx: FilterContext) -> BoolArray | None:
    """Pass hosts with fewer than ``max_io_ops_per_host`` concurrent I/O-heavy tasks."""
    return _count_below(ctx, "num_io_ops", ctx.config.max_io_ops_per_host)


@host_filter("AggregateIoOpsFilter")
def aggregate_io_ops(ctx: FilterContext) -> BoolArray | None:
    """Like IoOpsFilter, with per-aggregate ``max_io_ops_per_host`` (minimum)."""
    limit = _aggregate_limit(ctx, "max_io_ops_per_host", ctx.config.max_io_ops_per_host)
    return _count_below(ctx, "num_io_ops", limit)


@host_filter("IsolatedHostsFilter")
def isolated_hosts(ctx: FilterContext) -> BoolArray | None:
    """Keep isolated images on isolated hosts (and, if restricted, only them there)."""
    cfg = ctx.config
    if not cfg.isolated_hosts and not cfg.isolated_images:
        return None
    st = ctx.state
    host_isolated = _rows_mask(st, [st.row_of[h] for h in cfg.isolated_hosts
                                    if h in st.row_of])
    restrict = cfg.restrict_isolated_hosts_to_isolated_images
    if not cfg.isolated_images:
        return ~host_isolated if restrict and cfg.isolated_hosts else None
    image_isolated = ctx.spec.image.id in cfg.isolated_images
    if restrict:
        return host_isolated if image_isolated else ~host_isolated
    return host_isolated if image_isolated else all_hosts(ctx)


@host_filter("JsonFilter")
def json_filter(ctx: FilterContext) -> BoolArray | None:
    """Evaluate the ``query`` scheduler hint (Nova's JSON query language) per host."""
    raw = ctx.spec.hint("query")
    if not raw:
        return all_hosts(ctx)
    return jsonquery.evaluate(ctx.state, ctx.memo("json_query", lambda: jsonquery.parse(raw)))
