"""Import tasks: what an interoperable import did, and why it failed.

Every ``POST /v2/images/{id}/import`` records an ``api_image_import`` task
(table ``image_task``): ``processing`` while a ``web-download`` runs, then
``success`` (``result`` names the image) or ``failure`` (``message`` says
why); a ``glance-direct`` import is a ``success`` at once. The image's status
changes in the same transactions as its task's (``begin``, ``succeed``,
``fail``), each conditional on the task still being ``processing``; a running
task's ``updated_at`` is the import's lease (:mod:`nubis.api.image.recovery`:
an import whose process stopped ends ``failure``, "interrupted"). A finished task
expires 48 hours later (Glance's ``task_time_to_live``) and is then no longer
listed. The caller's project sees its own tasks, an admin every task:

- ``GET /v2/tasks`` (``openstack image task list``): newest first, filters
  ``type`` and ``status``, ``limit``/``marker`` paging with a ``next`` link;
- ``GET /v2/tasks/{id}`` (``openstack image task show``): with input, result and
  message;
- ``GET /v2/images/{id}/tasks`` (Glance 2.12, ``image_tasks`` in openstacksdk):
  the tasks of one image the caller may see.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import falcon.asgi
import sqlalchemy as sa
from nubis.api.image import schema as s
from nubis.api.image.service import ImageService
from nubis.api.image.uploads import staging
from nubis.api.image.views import isotime
from nubis.api.shared.auth import AuthContext
from nubis.api.shared.errors import BadRequestError, NotFoundError
from sqlalchemy.engine import Connection, Engine

#: How long a finished task is kept (Glance's ``task_time_to_live``).
TIME_TO_LIVE = timedelta(hours=48)
STATUSES = ("pending", "processing", "success", "failure")
IMPORT = "api_image_import"
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Task:
    """One task row."""

    id: str
    type: str
    status: str
    owner: str | None
    image_id: str
    user_id: str | None
    request_id: str | None
    input: dict[str, Any]
    result: dict[str, Any] | None
    message: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Task:
        """Build a task from a table row."""
        return cls(row.id, row.type, row.status, row.owner, row.image_id, row.user_id,
                   row.request_id, json.loads(row.input),
                   json.loads(row.result) if row.result else None, row.message,
                   row.created_at, row.updated_at, row.expires_at)


class TaskStore:
    """The ``image_task`` rows."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def begin(self, ctx: AuthContext, image_id: str, before: str, request_id: str,
              method: dict[str, Any]) -> str | None:
        """Move the image ``before`` → ``importing`` and record its task; return the task id.

        Both in one transaction, so an importing image always has a
        ``processing`` task (whose ``updated_at`` is the import's lease). None
        when the image was not ``before`` any more (another operation won) or
        is still being staged (``uploading`` while its bytes arrive).
        """
        now, task_id = self.clock(), str(uuid.uuid4())
        img = s.images
        with self.engine.begin() as conn:
            moved = conn.execute(img.update().where(img.c.id == image_id,
                                                    img.c.status == before,
                                                    ~staging(img.c.id))
                                 .values(status="importing", updated_at=now)).rowcount
            if not moved:
                return None
            conn.execute(s.tasks.insert().values(
                id=task_id, type=IMPORT, status="processing", owner=ctx.project_id,
                image_id=image_id, user_id=ctx.user_id, request_id=request_id,
                input=json.dumps({"image_id": image_id, "import_req": {"method": method}}),
                result=None, message="", created_at=now, updated_at=now, expires_at=None))
        return task_id

    def renew(self, task_id: str) -> bool:
        """Renew a running import's lease; False if the task is no longer ``processing``."""
        t = s.tasks
        with self.engine.begin() as conn:
            return bool(conn.execute(t.update().where(t.c.id == task_id,
                                                      t.c.status == "processing")
                                     .values(updated_at=self.clock())).rowcount)

    def succeed(self, task_id: str, image_id: str, **image_values: Any) -> bool:
        """End an import well: task ``success``, image ``importing`` → ``active``.

        Both or neither: False (nothing changed) when the task is no longer
        ``processing`` (its lease was taken over) or the image no longer
        ``importing`` (deleted meanwhile).
        """
        now = self.clock()
        img = s.images
        with self.engine.connect() as conn, conn.begin() as txn:
            if not self._end(conn, task_id, now, "success", "", image_id):
                return False
            if not conn.execute(img.update().where(img.c.id == image_id,
                                                   img.c.status == "importing")
                                .values(status="active", updated_at=now, **image_values)
                                ).rowcount:
                txn.rollback()
                return False
        return True

    def fail(self, task_id: str, image_id: str, message: str) -> bool:
        """End an import badly: task ``failure`` saying why, image back to ``queued``.

        False (nothing changed) when the task is no longer ``processing``.
        """
        now = self.clock()
        img = s.images
        with self.engine.begin() as conn:
            if not self._end(conn, task_id, now, "failure", message, image_id):
                return False
            conn.execute(img.update().where(img.c.id == image_id,
                                            img.c.status == "importing")
                         .values(status="queued", updated_at=now))
        return True

    def expired(self, cutoff: datetime, limit: int) -> list[Task]:
        """Return up to ``limit`` ``processing`` tasks whose lease is older than ``cutoff``."""
        t = s.tasks
        q = (sa.select(t).where(t.c.status == "processing", t.c.updated_at < cutoff)
             .order_by(t.c.updated_at).limit(limit))
        with self.engine.connect() as conn:
            return [Task.from_row(r) for r in conn.execute(q)]

    def interrupt(self, task: Task, cutoff: datetime, message: str) -> bool:
        """Fail ``task`` if its lease is still older than ``cutoff``; tell whether this won.

        A conditional update, so of several processes only one takes an
        abandoned import over, and an import whose lease was renewed meanwhile
        is left alone. The image stays ``importing`` (its ``updated_at`` now the
        winner's claim) until the winner removed its bytes and requeues it.
        """
        now = self.clock()
        t, img = s.tasks, s.images
        with self.engine.begin() as conn:
            won = conn.execute(t.update().where(
                t.c.id == task.id, t.c.status == "processing", t.c.updated_at < cutoff)
                .values(status="failure", message=message[:2000], result=None,
                        updated_at=now, expires_at=now + TIME_TO_LIVE)).rowcount
            if won:
                conn.execute(img.update().where(img.c.id == task.image_id,
                                                img.c.status == "importing")
                             .values(updated_at=now))
        return bool(won)

    def latest(self, image_id: str) -> Task | None:
        """Return the newest task of an image."""
        t = s.tasks
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.image_id == image_id)
                               .order_by(t.c.created_at.desc(), t.c.id.desc())).first()
        return Task.from_row(row) if row is not None else None

    @staticmethod
    def _end(conn: Connection, task_id: str, now: datetime, status: str, message: str,
             image_id: str) -> bool:
        t = s.tasks
        return bool(conn.execute(t.update().where(t.c.id == task_id,
                                                  t.c.status == "processing").values(
            status=status, message=message[:2000],
            result=json.dumps({"image_id": image_id}) if status == "success" else None,
            updated_at=now, expires_at=now + TIME_TO_LIVE)).rowcount)

    def visible(self, ctx: AuthContext) -> sa.ColumnElement[bool]:
        """Return the condition of the tasks ``ctx`` may see (not expired)."""
        t = s.tasks
        live = sa.or_(t.c.expires_at.is_(None), t.c.expires_at > self.clock())
        return live if ctx.is_admin else sa.and_(live, t.c.owner == ctx.project_id)

    def get(self, ctx: AuthContext, task_id: str) -> Task | None:
        """Return a task the caller may see."""
        t = s.tasks
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == task_id,
                                                  self.visible(ctx))).first()
        return Task.from_row(row) if row is not None else None

    def list(self, ctx: AuthContext, where: list[Any], limit: int) -> list[Task]:
        """Return visible tasks matching ``where``, newest first."""
        t = s.tasks
        q = (sa.select(t).where(self.visible(ctx), *where)
             .order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [Task.from_row(r) for r in conn.execute(q)]


def task_view(task: Task, full: bool) -> dict[str, Any]:
    """Return a task as Glance shows it (``full``: with input, result and message)."""
    out: dict[str, Any] = {
        "id": task.id, "type": task.type, "status": task.status, "owner": task.owner,
        "created_at": isotime(task.created_at), "updated_at": isotime(task.updated_at),
        "self": f"/v2/tasks/{task.id}", "schema": "/v2/schemas/task"}
    if task.expires_at is not None:
        out["expires_at"] = isotime(task.expires_at)
    if full:
        out.update({"input": task.input, "result": task.result, "message": task.message})
        extra = {"image_id": task.image_id, "user_id": task.user_id,
                 "request_id": task.request_id}
        out.update({k: v for k, v in extra.items() if v})  # as Glance: only when set
    return out


class Tasks:
    """``GET /v2/tasks`` and ``GET /v2/tasks/{task_id}``."""

    def __init__(self, svc: ImageService, store: TaskStore) -> None:
        self.svc = svc
        self.store = store

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """List the caller's tasks (an admin's: all)."""
        ctx = self.svc.caller(req)
        t = s.tasks
        where: list[Any] = []
        for key in ("type", "status"):
            value = req.get_param(key)
            if value is not None:
                if key == "status" and value not in STATUSES:
                    raise BadRequestError(f"Invalid status value: {value}")
                where.append(t.c[key] == value)
        limit = req.get_param_as_int("limit", min_value=0) or MAX_LIMIT
        marker = req.get_param("marker")
        if marker is not None:
            seen = self.store.get(ctx, marker)
            if seen is None:
                raise BadRequestError(f"Invalid marker. Task {marker} could not be found.")
            where.append(sa.or_(t.c.created_at < seen.created_at, sa.and_(
                t.c.created_at == seen.created_at, t.c.id < seen.id)))
        page = self.store.list(ctx, where, min(limit, MAX_LIMIT))
        body: dict[str, Any] = {"tasks": [task_view(x, False) for x in page],
                                "first": "/v2/tasks", "schema": "/v2/schemas/tasks"}
        if page and len(page) == min(limit, MAX_LIMIT):
            body["next"] = f"/v2/tasks?marker={page[-1].id}"
        resp.media = body

    async def on_get_one(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                         task_id: str) -> None:
        """Show one task."""
        task = self.store.get(self.svc.caller(req), task_id)
        if task is None:
            raise NotFoundError(f"Task with the given id {task_id} not found")
        resp.media = task_view(task, True)


class ImageTasks:
    """``GET /v2/images/{image_id}/tasks``."""

    def __init__(self, svc: ImageService, store: TaskStore) -> None:
        self.svc = svc
        self.store = store

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     image_id: str) -> None:
        """List the tasks of an image the caller may see."""
        ctx = self.svc.caller(req)
        self.svc.find(ctx, image_id)
        tasks = self.store.list(ctx, [s.tasks.c.image_id == image_id], MAX_LIMIT)
        resp.media = {"tasks": [task_view(x, True) for x in tasks]}
