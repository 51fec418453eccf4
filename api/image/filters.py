"""``GET /v2/images`` query parameters: filters, sorting and paging, as Glance reads them.

:func:`parse_list_query` turns the (multi-valued) query string into a
:class:`ListQuery`; it is pure and unit-tested. The store turns the query into
one SQL statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nubis.api.shared.errors import BadRequestError

SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at",
             "updated_at")
DEFAULT_SORT = ("created_at", "desc")
#: Filters on columns; every other unknown parameter filters on a free-form property.
COLUMN_FILTERS = ("name", "status", "owner", "disk_format", "container_format", "id",
                  "checksum", "os_hash_value")
TIME_FILTERS = ("created_at", "updated_at")
TIME_OPERATORS = ("gt", "gte", "lt", "lte", "eq", "neq")
MEMBER_STATUSES = ("pending", "accepted", "rejected", "all")
VISIBILITIES = ("community", "public", "private", "shared", "all")
MAX_IN_VALUES = 100


@dataclass(frozen=True)
class TimeFilter:
    """``created_at=gte:2024-01-01T00:00:00Z`` as (column, operator, instant)."""

    column: str
    op: str
    when: datetime


@dataclass(frozen=True)
class ListQuery:
    """Everything ``GET /v2/images`` asks for."""

    limit: int
    marker: str | None = None
    sort: tuple[tuple[str, str], ...] = (DEFAULT_SORT,)
    member_status: str = "accepted"
    visibility: str | None = None
    #: column -> accepted values (``in:`` gives several).
    columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    size_min: int | None = None
    size_max: int | None = None
    times: tuple[TimeFilter, ...] = ()
    protected: bool | None = None
    os_hidden: bool = False


def parse_list_query(params: Mapping[str, Sequence[str]], *, default_limit: int,
                     max_limit: int) -> ListQuery:
    """Parse the query string of ``GET /v2/images`` (400 on anything Glance refuses)."""
    rest = {k: list(v) for k, v in params.items()}
    limit = _limit(_one(rest, "limit"), default_limit, max_limit)
    marker = _one(rest, "marker")
    member_status = _one(rest, "member_status") or "accepted"
    if member_status not in MEMBER_STATUSES:
        raise BadRequestError(f"Invalid status: {member_status}")
    sort = _sorting(rest)
    tags = tuple(t.strip() for t in rest.pop("tag", []))
    visibility = _one(rest, "visibility")
    if visibility is not None and visibility not in VISIBILITIES:
        raise BadRequestError(f"Invalid visibility value: {visibility}")
    if "changes-since" in rest:
        raise BadRequestError('The "changes-since" filter is no longer available on v2.')
    size_min, size_max = _size(_one(rest, "size_min")), _size(_one(rest, "size_max"))
    protected = _boolean(rest, "protected", None)
    hidden = _boolean(rest, "os_hidden", False)
    times = tuple(_time_filter(col, value) for col in TIME_FILTERS
                  for value in rest.pop(col, []))
    columns = {col: _in_values(_one(rest, col) or "") for col in COLUMN_FILTERS if col in rest}
    properties = {key: values[-1] for key, values in rest.items() if values}
    return ListQuery(limit=limit, marker=marker, sort=sort, member_status=member_status,
                     visibility=None if visibility == "all" else visibility,
                     columns=columns, properties=properties, tags=tags, size_min=size_min,
                     size_max=size_max, times=times, protected=protected,
                     os_hidden=bool(hidden))


def _one(params: dict[str, list[str]], key: str) -> str | None:
    values = params.pop(key, [])
    return values[-1] if values else None


def _limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return min(default, maximum)
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequestError("limit param must be an integer") from None
    if limit < 0:
        raise BadRequestError("limit param must be positive")
    return min(limit, maximum)


def _sorting(params: dict[str, list[str]]) -> tuple[tuple[str, str], ...]:
    keys: list[str] = []
    dirs: list[str] = []
    if "sort" in params:
        if "sort_key" in params or "sort_dir" in params:
            raise BadRequestError("Old and new sorting syntax cannot be combined")
        for item in (_one(params, "sort") or "").strip().split(","):
            key, _, direction = item.partition(":")
            keys.append(_sort_key(key.strip()))
            dirs.append(_sort_dir(direction.strip() or DEFAULT_SORT[1]))
        return tuple(zip(keys, dirs, strict=True))
    keys = [_sort_key(k.strip()) for k in params.pop("sort_key", [])]
    dirs = [_sort_dir(d.strip()) for d in params.pop("sort_dir", [])]
    if len(dirs) > 1 and len(dirs) != len(keys):
        raise BadRequestError("Number of sort dirs does not match the number of sort keys")
    keys = keys or [DEFAULT_SORT[0]]
    if not dirs:
        dirs = [DEFAULT_SORT[1]]
    if len(dirs) == 1:
        dirs = dirs * len(keys)
    return tuple(zip(keys, dirs, strict=True))


def _sort_key(key: str) -> str:
    if key not in SORT_KEYS:
        raise BadRequestError(f"Invalid sort key: {key}. It must be one of the following: "
                              f"{', '.join(SORT_KEYS)}.")
    return key


def _sort_dir(direction: str) -> str:
    if direction not in ("asc", "desc"):
        raise BadRequestError(f"Invalid sort direction: {direction}")
    return direction


def _size(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequestError("Unable to filter on a range with a non-numeric value.") from None


def _boolean(params: dict[str, list[str]], key: str, default: bool | None) -> bool | None:
    raw = _one(params, key)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise BadRequestError(f"Invalid value '{raw}' for '{key}' filter. Valid values "
                              "are 'true' or 'false'.")
    return raw.lower() == "true"


def _in_values(raw: str) -> tuple[str, ...]:
    if not raw.startswith("in:"):
        return (raw,)
    values = tuple(v.strip('"') for v in raw[3:].split(","))
    if len(values) > MAX_IN_VALUES:
        raise BadRequestError(f"At most {MAX_IN_VALUES} values for the 'in' operator.")
    return values


def _time_filter(column: str, raw: str) -> TimeFilter:
    op, sep, value = raw.partition(":")
    if not sep or op not in TIME_OPERATORS:
        op, value = "eq", raw
    return TimeFilter(column, op, parse_time(value))


def parse_time(value: str) -> datetime:
    """Parse an ISO 8601 instant (``Z`` or an offset; naive means UTC) to naive UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequestError(f"Invalid date format '{value}'.") from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when
