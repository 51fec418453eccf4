"""The volume API's shared state and request helpers: store, peers, quotas, views, paging."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any

import falcon.asgi
from nubis.api.shared.auth import AuthContext
from nubis.api.shared.background import TaskSet
from nubis.api.shared.errors import BadRequestError, ForbiddenError, NotFoundError
from nubis.api.volume.clients import ImageClient, VolumeDaemonClient
from nubis.api.volume.config import VolumeApiConfig
from nubis.api.volume.errors import OverQuotaError
from nubis.api.volume.store import Record, VolumeStore

LOG = logging.getLogger("nubis.api.volume")
Version = tuple[int, int]
MIN_VERSION: Version = (3, 0)
MAX_VERSION: Version = (3, 70)

#: Quota resources and Cinder's names for them in messages and limits.
QUOTA_RESOURCES = ("volumes", "gigabytes", "snapshots", "backups", "backup_gigabytes")
#: Statuses a volume passes through while the daemon works on it.
TRANSITIONAL = ("creating", "deleting", "extending", "backing-up", "restoring-backup",
                "attaching", "detaching", "reserved")


def auth(req: falcon.asgi.Request) -> AuthContext:
    """Return the caller (the auth middleware has verified the token)."""
    ctx: AuthContext = req.context.auth
    return ctx


def project_of(req: falcon.asgi.Request) -> str:
    """Return the caller's project (the volume API needs a project-scoped token)."""
    ctx = auth(req)
    if not ctx.project_id:
        raise ForbiddenError("The volume API needs a project-scoped token.")
    return ctx.project_id


def mv_of(req: falcon.asgi.Request) -> Version:
    """Return the negotiated microversion."""
    mv: Version = req.context.mv
    return mv


def iso(value: datetime | None) -> str | None:
    """Return Cinder's timestamp format."""
    return None if value is None else value.isoformat(timespec="microseconds")


def body_of(doc: Any, key: str) -> dict[str, Any]:
    """Return ``doc[key]`` of a JSON body as an object, or Cinder's 400."""
    if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
        raise BadRequestError(f"Missing required element '{key}' in request body.")
    inner: dict[str, Any] = doc[key]
    return inner


def size_of(value: Any, what: str = "size") -> int:
    """Return a positive integer size in GiB, or Cinder's 400."""
    try:
        size = int(value)
        if isinstance(value, bool) or (isinstance(value, float) and size != value):
            raise ValueError
    except (TypeError, ValueError):
        raise BadRequestError(f"Invalid input received: {what} must be an integer "
                              f"(got {value!r}).") from None
    if size < 1:
        raise BadRequestError(f"Invalid input received: {what} '{value}' must be an "
                              f"integer and greater than 0.")
    if size > 2 ** 31 - 1:
        raise BadRequestError(f"Invalid input received: {what} must be <= 2147483647.")
    return size


def text_of(doc: dict[str, Any], key: str, limit: int = 255) -> str | None:
    """Return an optional string field (400 when not a string or too long)."""
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequestError(f"Invalid input received: {key} must be a string of at "
                              f"most {limit} characters.")
    return value


def metadata_of(value: Any) -> dict[str, str]:
    """Return a metadata object (string keys and values, Cinder's limits), or 400."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255 and len(v) <= 255
            for k, v in value.items()):
        raise BadRequestError("Invalid input received: metadata must be an object of "
                              "strings (keys 1-255, values up to 255 characters).")
    if len(value) > 128:
        raise BadRequestError("Invalid input received: at most 128 metadata items.")
    return dict(value)


class VolumeService:
    """Everything the handlers share (one per ``nubis api`` process)."""

    def __init__(self, cfg: VolumeApiConfig, store: VolumeStore, root_url: str,
                 daemon: VolumeDaemonClient, images: ImageClient) -> None:
        self.cfg = cfg
        self.store = store
        self.root_url = root_url
        self.base_url = f"{root_url}/v3"
        self.daemon = daemon
        self.images = images
        self.tasks = TaskSet(LOG)

    # --- background work ----------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``coro`` in the background (kept referenced; failures logged)."""
        self.tasks.spawn(coro, what)

    async def drain(self, timeout: float) -> None:
        """Wait for background work (tests and shutdown)."""
        await self.tasks.drain(timeout)

    # --- lookups and policy ----------------------------------------------------------------

    def require_admin(self, req: falcon.asgi.Request, rule: str) -> None:
        """Raise Cinder's policy 403 unless the caller is an admin."""
        if not auth(req).is_admin:
            raise ForbiddenError(f"Policy doesn't allow {rule} to be performed.")

    def find(self, req: falcon.asgi.Request, kind: str, ident: str, label: str) -> Record:
        """Return a resource of the caller's project (any for admins), else Cinder's 404."""
        rec = self.store.get(kind, ident)
        ctx = auth(req)
        if rec is None or (rec.project_id != project_of(req) and not ctx.is_admin):
            raise NotFoundError(f"{label} {ident} could not be found.")
        return rec

    def volume_type(self, req: falcon.asgi.Request, ident: str | None) -> Record:
        """Return a volume type by id or name that the caller may use (default: ``__DEFAULT__``)."""
        wanted = ident or "__DEFAULT__"
        rec = self.store.get("type", wanted)
        if rec is None:
            rec = next((t for t in self.store.select("type") if t.name == wanted), None)
        ctx = auth(req)
        if rec is not None and not rec.get("is_public", True) and not ctx.is_admin and (
                project_of(req) not in self.store.type_access(rec.id)):
            rec = None
        if rec is None:
            raise NotFoundError(f"Volume type with name {wanted} could not be found.")
        return rec

    # --- quotas ----------------------------------------------------------------------------

    def defaults(self) -> dict[str, int]:
        """Return the default quota of each resource."""
        return {r: int(getattr(self.cfg, r)) for r in QUOTA_RESOURCES}

    def limits(self, project_id: str) -> dict[str, int]:
        """Return a project's quotas (defaults overridden per project)."""
        return {**self.defaults(), **self.store.quotas(project_id)}

    def usage(self, project_id: str) -> dict[str, int]:
        """Return what a project uses of each quota resource."""
        volumes, gigabytes = self.store.count("volume", project_id, "size")
        snaps, snap_gb = self.store.count("snapshot", project_id, "size")
        backups, backup_gb = self.store.count("backup", project_id, "size")
        return {"volumes": volumes, "gigabytes": gigabytes + snap_gb, "snapshots": snaps,
                "backups": backups, "backup_gigabytes": backup_gb}

    def check_quota(self, project_id: str, **wanted: int) -> None:
        """Raise Cinder's 413 when adding ``wanted`` would exceed a quota."""
        limits, used = self.limits(project_id), self.usage(project_id)
        for resource, delta in wanted.items():
            limit = limits[resource]
            if limit < 0 or used[resource] + delta <= limit:
                continue
            if resource == "gigabytes":
                raise OverQuotaError(
                    f"VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds "
                    f"allowed gigabytes quota. Requested {delta}G, quota is {limit}G and "
                    f"{used[resource]}G has been consumed.")
            if resource == "backup_gigabytes":
                raise OverQuotaError(
                    f"VolumeBackupSizeExceedsAvailableQuota: Requested backup exceeds "
                    f"allowed Backup gigabytes quota. Requested {delta}G, quota is {limit}G "
                    f"and {used[resource]}G has been consumed.")
            kind = {"volumes": "VolumeLimitExceeded", "snapshots": "SnapshotLimitExceeded",
                    "backups": "BackupLimitExceeded"}[resource]
            raise OverQuotaError(f"{kind}: Maximum number of {resource} allowed ({limit}) "
                                 f"exceeded for quota '{resource}'.")

    # --- listing -------------------------------------------------------------------------

    @staticmethod
    def int_param(req: falcon.asgi.Request, name: str, default: int) -> int:
        """Return a non-negative integer query parameter (400 if malformed)."""
        raw = req.get_param(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequestError(f"Invalid input received: {name} must be an integer, "
                                  f"got '{raw}'.") from None
        if value < 0:
            raise BadRequestError(f"Invalid input received: {name} must be >= 0.")
        return value

    def page(self, req: falcon.asgi.Request, items: Sequence[Record],
             sort_keys: Sequence[str] = ("created_at", "id")) -> list[Record]:
        """Sort (``sort=key:dir,...`` or ``sort_key``/``sort_dir``), then marker/offset/limit."""
        recs = sorted(items, key=lambda r: (r.created_at, r.id), reverse=True)
        sort = req.get_param("sort") or ""
        if not sort and req.get_param("sort_key"):
            sort = f"{req.get_param('sort_key')}:{req.get_param('sort_dir') or 'desc'}"
        for part in reversed([p for p in sort.split(",") if p]):
            key, _, direction = part.partition(":")
            if key not in (*sort_keys, "name", "status", "size", "updated_at", "created_at",
                           "id"):
                raise BadRequestError(f"Invalid input received: sort key {key} is not valid.")
            if direction not in ("", "asc", "desc"):
                raise BadRequestError(f"Invalid input received: sort direction {direction} "
                                      f"is not valid.")
            recs.sort(key=functools.partial(_sort_value, key=key), reverse=direction != "asc")
        marker = req.get_param("marker")
        start = self.int_param(req, "offset", 0)
        if marker:
            ids = [r.id for r in recs]
            if marker not in ids:
                raise NotFoundError(f"Marker {marker} could not be found.")
            start = ids.index(marker) + 1
        limit = min(self.int_param(req, "limit", self.cfg.max_limit), self.cfg.max_limit)
        req.context.page_full = len(recs) - start > limit
        return recs[start:start + limit]

    def links(self, req: falcon.asgi.Request, collection: str,
              items: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
        """Return the ``next`` link of a full page."""
        if not getattr(req.context, "page_full", False) or not items:
            return []
        query = [f"{k}={v}" for k, v in req.params.items() if k != "marker"]
        query.append(f"marker={items[-1]['id']}")
        return [{"rel": "next", "href": f"{self.base_url}/{collection}?{'&'.join(query)}"}]

    def link(self, collection: str, ident: str) -> list[dict[str, str]]:
        """Return a resource's self/bookmark links."""
        return [{"rel": "self", "href": f"{self.base_url}/{collection}/{ident}"},
                {"rel": "bookmark", "href": f"{self.root_url}/{collection}/{ident}"}]


def _sort_value(rec: Record, key: str) -> Any:
    if key in ("created_at", "updated_at"):
        return getattr(rec, key) or datetime.min
    if key in ("name", "status", "id"):
        return getattr(rec, key) or ""
    return rec.get(key) if rec.get(key) is not None else 0


def filter_records(req: falcon.asgi.Request, recs: Sequence[Record],
                   fields: Sequence[str]) -> list[Record]:
    """Apply Cinder's equality filters (``name``, ``status``, ..., ``metadata``)."""
    out = list(recs)
    for key in fields:
        raw = req.get_param(key)
        if raw is None:
            continue
        if key == "metadata":
            wanted = _dict_param(raw)
            out = [r for r in out if all((r.get("metadata") or {}).get(k) == v
                                         for k, v in wanted.items())]
        elif key in ("name", "status"):
            out = [r for r in out if getattr(r, key) == raw]
        elif key == "name~":
            out = [r for r in out if raw in (r.name or "")]
        else:
            out = [r for r in out if str(r.get(key)).lower() == raw.lower()]
    return out


def _dict_param(raw: str) -> dict[str, str]:
    import ast

    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise BadRequestError(f"Invalid input received: bad filter {raw!r}.") from None
    if not isinstance(value, dict):
        raise BadRequestError(f"Invalid input received: bad filter {raw!r}.")
    return {str(k): str(v) for k, v in value.items()}


Handler = Callable[..., Coroutine[Any, Any, None]]
