"""Scalar helpers with Nova's semantics, and host attributes as (codes, table) pairs.

``match`` is Nova's ``extra_specs_ops.match``; ``version_satisfied`` is the
``img_hv_requested_version`` predicate; ``canonical_*`` mirror Nova's
``fields.Architecture/HVType/VMMode.canonicalize``. :func:`resolve` turns an
attribute path (``free_ram_mb``, ``stats.foo``, ``cpu_info.features``) into
``(codes, table)``: ``table[codes[row]]`` is the value for ``row``, so a
predicate runs once per distinct value.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from nubis.daemons.scheduler.hoststate import HostState, SigColumn

Codes = npt.NDArray[np.intp]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda x, y: float(x) >= float(y),
    "<in>": lambda x, y: y in x,
    "<all-in>": lambda x, y: all(val in x for val in y),
    "==": lambda x, y: float(x) == float(y),
    "!=": lambda x, y: float(x) != float(y),
    ">=": lambda x, y: float(x) >= float(y),
    "<=": lambda x, y: float(x) <= float(y),
    "s==": operator.eq,
    "s!=": operator.ne,
    "s<": operator.lt,
    "s<=": operator.le,
    "s>": operator.gt,
    "s>=": operator.ge,
}
#: Operators whose comparison is numeric (``float(x) OP float(y)``).
NUMERIC_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.ge, "==": operator.eq, "!=": operator.ne,
    ">=": operator.ge, "<=": operator.le}

#: Names a flavor extra spec or a JsonFilter query may use for the host itself.
HOST_ATTRIBUTES = frozenset({
    "host", "nodename", "hypervisor_hostname", "hypervisor_type", "hypervisor_version",
    "free_ram_mb", "free_disk_mb", "total_usable_ram_mb", "total_usable_disk_gb",
    "vcpus_total", "vcpus_used", "num_instances", "num_io_ops", "failed_builds",
    "cpu_info", "stats", "uuid"})


def match(value: Any, req: str) -> bool:
    """Match a capability string against an extra-spec requirement (Nova's ops).

    Unlike Nova, a value that cannot be converted for a numeric operator does not
    raise: the host simply does not match.
    """
    words = req.split()
    op = method = None
    if words:
        op = words.pop(0)
        method = _OPS.get(op)
    if op != "<or>" and method is None:
        return bool(value == req)
    if value is None:
        return False
    if op == "<or>":
        while words:
            if words.pop(0) == value:
                return True
            if not words:
                break
            words.pop(0)
        return False
    if not words:
        return False
    assert method is not None
    try:
        if op == "<all-in>":
            return bool(method(value, words))
        return bool(method(value, words[0]))
    except (ValueError, TypeError):
        return False


def canonical_arch(name: Any) -> str | None:
    """Canonicalize an architecture name like Nova."""
    if not name:
        return None
    new = str(name).lower()
    if new in ("i386", "i486", "i586", "x86_32"):
        return "i686"
    if new == "amd64":
        return "x86_64"
    return new


def canonical_hv_type(name: Any) -> str | None:
    """Canonicalize a hypervisor type like Nova (``xapi`` is ``xen``)."""
    if not name:
        return None
    new = str(name).lower()
    return "xen" if new == "xapi" else new


def canonical_vm_mode(name: Any) -> str | None:
    """Canonicalize a VM mode like Nova (``pv``→``xen``, ``hv``/``baremetal``→``hvm``)."""
    if not name:
        return None
    new = str(name).lower()
    return {"pv": "xen", "hv": "hvm", "baremetal": "hvm"}.get(new, new)


def version_to_str(version: int) -> str:
    """Convert Nova's integer hypervisor version (``8002000``) to ``8.2.0``."""
    parts: list[str] = []
    while version != 0:
        parts.insert(0, str(version % 1000))
        version //= 1000
    return ".".join(parts)


_PRED = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*([0-9]+(?:\.[0-9]+){0,2})\s*$")
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, ">=": operator.ge}


def _vtuple(text: str) -> tuple[int, ...]:
    nums = [int(p) for p in text.split(".")]
    return tuple(nums + [0] * (3 - len(nums)))


def version_satisfied(version_str: str, predicate: str) -> bool:
    """Tell whether ``version_str`` satisfies ``>=6.0, <7`` (distutils VersionPredicate).

    A malformed predicate matches nothing.
    """
    try:
        have = _vtuple(version_str)
    except ValueError:
        return False
    for piece in predicate.split(","):
        m = _PRED.match(piece)
        if m is None:
            return False
        if not _CMP[m.group(1)](have, _vtuple(m.group(2))):
            return False
    return True


def walk(value: Any, path: Sequence[str]) -> Any:
    """Follow ``path`` into nested dicts (JSON strings are decoded on the way)."""
    cap = value
    for item in path:
        if isinstance(cap, str):
            try:
                cap = json.loads(cap)
            except ValueError:
                return None
        cap = cap.get(item) if isinstance(cap, dict) else None
        if cap is None:
            return None
    return cap


def _sig_attr(sig: SigColumn, n: int, rest: Sequence[str]) -> tuple[Codes, list[Any]]:
    table = [walk(v, rest) for v in sig.values]
    return sig.col[:n].astype(np.intp), table


def _numeric_codes(values: npt.NDArray[Any]) -> tuple[Codes, list[Any]]:
    uniq, inv = np.unique(values, return_inverse=True)
    return inv.astype(np.intp), [int(v) if float(v).is_integer() else float(v)
                                 for v in uniq.tolist()]


def numeric_column(state: HostState, name: str) -> npt.NDArray[Any] | None:
    """Return the numeric column ``name`` (``None`` when it is not numeric)."""
    getter = state.numeric_attributes().get(name)
    return None if getter is None else getter()


def sig_attribute(state: HostState, path: Sequence[str],
                  stats_fallback: bool = False) -> tuple[SigColumn, list[Any]] | None:
    """Return ``(column, table)`` when the attribute at ``path`` lives in a SigColumn.

    ``table[i]`` is the attribute for signature id ``i`` (see :func:`resolve`).
    """
    head, rest = path[0], path[1:]
    if head in state.numeric_attributes() or head in ("host", "nodename",
                                                      "hypervisor_hostname", "uuid"):
        return None
    if head == "hypervisor_type":
        return state.hv_type, ([walk(v, rest) for v in state.hv_type.values] if rest
                               else list(state.hv_type.values))
    if head in ("cpu_info", "stats"):
        sig = state.cpu_info if head == "cpu_info" else state.stats
        return sig, [walk(v, rest) for v in sig.values]
    if stats_fallback:
        return state.stats, [walk(v, path) for v in state.stats.values]
    return None


def resolve(state: HostState, path: Sequence[str],
            stats_fallback: bool = False) -> tuple[Codes, list[Any]]:
    """Return ``(codes, table)`` for the host attribute at ``path`` (``None`` = missing).

    With ``stats_fallback`` (ComputeCapabilitiesFilter), a first element that is
    not a host attribute is looked up in the host's ``stats``.
    """
    n = state.n
    head, rest = path[0], path[1:]
    column = numeric_column(state, head)
    if column is not None:
        codes, table = _numeric_codes(column)
        return codes, [walk(v, rest) if rest else v for v in table]
    if head in ("host", "nodename", "hypervisor_hostname", "uuid"):
        names = state.uuids if head == "uuid" else state.names
        return np.arange(n, dtype=np.intp), [walk(v, rest) if rest else v for v in names]
    if head == "hypervisor_type":
        return _sig_attr(state.hv_type, n, rest) if rest else (
            state.hv_type.col[:n].astype(np.intp), list(state.hv_type.values))
    if head == "cpu_info":
        return _sig_attr(state.cpu_info, n, rest)
    if head == "stats":
        return _sig_attr(state.stats, n, rest)
    if stats_fallback:
        return _sig_attr(state.stats, n, path)
    return np.zeros(n, dtype=np.intp), [None]
