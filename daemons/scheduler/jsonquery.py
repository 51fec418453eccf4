"""Nova's JsonFilter query language, evaluated for all hosts at once.

A query is a JSON list ``[op, arg, ...]``; ops are ``= < > in <= >= not or and``;
string args starting with ``$`` name host attributes (``$free_ram_mb``,
``$stats.foo``); ``None`` args are dropped before the op runs, as in Nova.
Queries over numeric host columns run as numpy expressions; anything else is
evaluated once per distinct combination of the referenced attribute values.
Unlike Nova, a comparison between incompatible types fails the host instead of
raising.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
from nubis.daemons.scheduler import attributes as attrs
from nubis.daemons.scheduler.errors import BadRequest
from nubis.daemons.scheduler.hoststate import BoolArray, HostState

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "<": operator.lt, ">": operator.gt,
    "<=": operator.le, ">=": operator.ge}
COMMANDS = frozenset({*_COMPARE, "in", "not", "or", "and"})
MAX_NODES = 256


def load_query(raw: Any) -> Any:
    """Decode a JsonFilter ``query`` hint (a JSON string, or an already-decoded list)."""
    if isinstance(raw, list):
        return raw
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise BadRequest("scheduler_hints.query: not valid JSON") from None


def parse(raw: Any) -> list[Any]:
    """Decode and validate a query; raise BadRequest for unknown ops or bad shapes."""
    query = load_query(raw)
    if not isinstance(query, list):
        raise BadRequest("scheduler_hints.query: must be a JSON list")
    budget = [MAX_NODES]

    def check(q: list[Any]) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise BadRequest("scheduler_hints.query: too complex")
        if not q:
            return
        if not isinstance(q[0], str) or q[0] not in COMMANDS:
            raise BadRequest(f"scheduler_hints.query: unknown operator {q[0]!r}")
        for arg in q[1:]:
            if isinstance(arg, list):
                check(arg)
            elif isinstance(arg, dict):
                raise BadRequest("scheduler_hints.query: objects are not allowed")
    check(query)
    return query


# -- scalar semantics (one host) ------------------------------------------------------------
def _op_compare(args: list[Any], op: str) -> bool:
    if len(args) < 2:
        return False
    if op == "in":
        return args[0] in args[1:]
    fn = _COMPARE[op]
    return not [a for a in args[1:] if not fn(args[0], a)]


def run_scalar(query: list[Any], lookup: Callable[[str], Any]) -> Any:
    """Evaluate ``query`` for one host; ``lookup("$x.y")`` returns its value or None."""
    if not query:
        return True
    cmd = query[0]
    cooked = []
    for arg in query[1:]:
        if isinstance(arg, list):
            arg = run_scalar(arg, lookup)
        elif isinstance(arg, str) and arg.startswith("$"):
            arg = lookup(arg)
        if arg is not None:
            cooked.append(arg)
    if cmd == "not":
        return [not a for a in cooked]
    if cmd == "or":
        return any(cooked)
    if cmd == "and":
        return all(cooked)
    return _op_compare(cooked, cmd)


def host_passes(query: list[Any], lookup: Callable[[str], Any]) -> bool:
    """Return JsonFilter's verdict for one host (type errors fail the host)."""
    try:
        result = run_scalar(query, lookup)
    except TypeError:
        return False
    if isinstance(result, list):
        result = any(result)
    return bool(result)


# -- vectorized evaluation --------------------------------------------------------------------
class _FallbackError(Exception):
    """The fast path cannot express this query exactly."""


def _variables(query: list[Any], out: set[str]) -> set[str]:
    for arg in query[1:]:
        if isinstance(arg, list):
            _variables(arg, out)
        elif isinstance(arg, str) and arg.startswith("$"):
            out.add(arg)
    return out


def _is_num(v: Any) -> bool:
    return isinstance(v, np.ndarray) or (isinstance(v, int | float) and not isinstance(v, str))


def _vec_compare(a: Any, b: Any, op: str) -> Any:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (_is_num(a) and _is_num(b)):
            if isinstance(a, list) or isinstance(b, list):
                raise _FallbackError
            if op == "=":
                return False
            raise TypeError("incompatible types")
        return _COMPARE[op](a, b)
    if isinstance(a, list) or isinstance(b, list):
        raise _FallbackError
    return _COMPARE[op](a, b)


def _truthy(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v != 0
    return bool(v)


def _run_vector(query: list[Any], env: dict[str, Any]) -> Any:
    if not query:
        return True
    cmd = query[0]
    cooked = []
    for arg in query[1:]:
        if isinstance(arg, list):
            arg = _run_vector(arg, env)
        elif isinstance(arg, str) and arg.startswith("$"):
            arg = env[arg]
        if arg is not None:
            cooked.append(arg)
    if cmd == "not":
        return [np.logical_not(_truthy(a)) if isinstance(a, np.ndarray) else not a
                for a in cooked]
    if cmd in ("or", "and"):
        acc: Any = cmd == "and"
        for a in cooked:
            t = _truthy(a)
            acc = (acc & t) if cmd == "and" else (acc | t)
        return acc
    if len(cooked) < 2:
        return False
    if cmd == "in":
        hit: Any = False
        for other in cooked[1:]:
            hit = hit | _vec_compare(cooked[0], other, "=")
        return hit
    result: Any = True
    for other in cooked[1:]:
        result = result & _vec_compare(cooked[0], other, cmd)
    return result


def _finish(result: Any, n: int) -> BoolArray:
    if isinstance(result, list):
        acc: Any = False
        for r in result:
            acc = acc | _truthy(r)
        result = acc
    out = np.empty(n, dtype=np.bool_)
    out[:] = _truthy(result)
    return out


def _fast(state: HostState, query: list[Any], names: set[str]) -> BoolArray:
    env: dict[str, Any] = {}
    for name in names:
        path = name[1:].split(".")
        column = attrs.numeric_column(state, path[0])
        if column is not None and len(path) == 1:
            env[name] = column
        elif path[0] not in attrs.HOST_ATTRIBUTES:
            env[name] = None
        else:
            raise _FallbackError
    try:
        return _finish(_run_vector(query, env), state.n)
    except TypeError:
        return np.zeros(state.n, dtype=np.bool_)


def _grouped(state: HostState, query: list[Any], names: list[str]) -> BoolArray:
    resolved = []
    for name in names:
        path = name[1:].split(".")
        if path[0] in attrs.HOST_ATTRIBUTES:
            resolved.append(attrs.resolve(state, path))
        else:
            resolved.append((np.zeros(state.n, dtype=np.intp), [None]))
    stacked = np.stack([codes for codes, _ in resolved], axis=1)
    uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
    verdicts = np.zeros(len(uniq), dtype=np.bool_)
    for i, combo in enumerate(uniq.tolist()):
        values = {name: resolved[j][1][c]
                  for j, (name, c) in enumerate(zip(names, combo, strict=True))}
        verdicts[i] = host_passes(query, values.__getitem__)
    return verdicts[inverse.reshape(-1)]  # type: ignore[no-any-return]


def evaluate(state: HostState, query: list[Any]) -> BoolArray:
    """Return JsonFilter's mask over all hosts for a parsed ``query``."""
    names = _variables(query, set())
    try:
        return _fast(state, query, names)
    except _FallbackError:
        pass
    if not names:
        return np.full(state.n, host_passes(query, lambda _: None), dtype=np.bool_)
    return _grouped(state, query, sorted(names))
