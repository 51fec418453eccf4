"""Image data access (SQLAlchemy Core): images, properties, tags and members.

Status changes that race with each other (two uploads, an upload and a delete)
are compare-and-swap updates (``... WHERE status = :expected``), so exactly one
caller wins. Listing is one SELECT with keyset pagination over the requested
sort keys (``created_at`` and ``id`` appended, as Glance does), nullable keys
coalesced so SQLite and PostgreSQL order alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from nubis.api.image import schema as s
from nubis.api.image.filters import ListQuery
from nubis.api.image.model import Image, ImageUpdate, Member
from nubis.api.shared.errors import ConflictError
from nubis.common.db import migrate
from sqlalchemy.engine import Connection, Engine

Clock = Callable[[], datetime]

#: Sort keys whose column may be NULL -> the value NULL sorts as.
_NULL_AS: dict[str, Any] = {"name": "", "container_format": "", "disk_format": "",
                            "size": -1}
_TIME_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "gt": lambda c, v: c > v, "gte": lambda c, v: c >= v, "lt": lambda c, v: c < v,
    "lte": lambda c, v: c <= v, "eq": lambda c, v: c == v, "neq": lambda c, v: c != v}


def utcnow() -> datetime:
    """Return the current UTC time as a naive datetime (how the tables store it)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_image_id() -> str:
    """Return a new image id (a UUID in its canonical form, as Glance's)."""
    return str(uuid.uuid4())


class ImageStore:
    """Rows of the image service on the shared control-plane engine."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def migrate(self) -> None:
        """Create or upgrade the image tables."""
        migrate(self.engine, "image", s.MIGRATIONS)

    # --- images ------------------------------------------------------------------
    def create(self, values: dict[str, Any], properties: dict[str, str | None],
               tags: Sequence[str]) -> Image:
        """Insert a queued image; 409 if the id is taken."""
        now = self.clock()
        row = {"status": "queued", "visibility": "shared", "protected": False,
               "os_hidden": False, "min_disk": 0, "min_ram": 0, "segments": 0,
               **values, "created_at": now, "updated_at": now}
        row.setdefault("id", new_image_id())
        try:
            with self.engine.begin() as conn:
                conn.execute(s.images.insert().values(**row))
                self._write_children(conn, row["id"], properties, tags)
        except sa.exc.IntegrityError:
            raise ConflictError(f"Image with identifier {row['id']} already exists!") from None
        image = self.get(row["id"])
        assert image is not None
        return image

    def get(self, image_id: str) -> Image | None:
        """Return the image ``image_id`` or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(s.images).where(s.images.c.id == image_id)
                               ).mappings().first()
            if row is None:
                return None
            return self._images(conn, [row])[0]

    def update(self, image: Image, change: ImageUpdate) -> Image:
        """Store a PATCH result (columns, whole property map, tags)."""
        with self.engine.begin() as conn:
            values = {**change.columns, "updated_at": self.clock()}
            done = conn.execute(s.images.update().where(s.images.c.id == image.id)
                                .values(**values)).rowcount
            if done:
                conn.execute(s.properties.delete().where(s.properties.c.image_id == image.id))
                conn.execute(s.tags.delete().where(s.tags.c.image_id == image.id))
                self._write_children(conn, image.id, change.properties, change.tags)
        return self.get(image.id) or image

    def transition(self, image_id: str, expected: Iterable[str], status: str,
                   **values: Any) -> bool:
        """Set ``status`` (and ``values``) only if the status is one of ``expected``."""
        stmt = (s.images.update()
                .where(s.images.c.id == image_id, s.images.c.status.in_(list(expected)))
                .values(status=status, updated_at=self.clock(), **values))
        with self.engine.begin() as conn:
            return bool(conn.execute(stmt).rowcount)

    def delete(self, image_id: str) -> bool:
        """Delete the image row and everything hanging off it; False if already gone."""
        with self.engine.begin() as conn:
            for table in (s.properties, s.tags, s.members):
                conn.execute(table.delete().where(table.c.image_id == image_id))
            return bool(conn.execute(s.images.delete().where(s.images.c.id == image_id)
                                     ).rowcount)

    def add_tag(self, image: Image, tag: str) -> None:
        """Add ``tag`` (no-op when present)."""
        if tag in image.tags:
            return
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(s.tags.insert().values(image_id=image.id, value=tag))
            except sa.exc.IntegrityError:
                return
            self._touch(conn, image.id)

    def remove_tag(self, image: Image, tag: str) -> bool:
        """Remove ``tag``; False if it was not there."""
        with self.engine.begin() as conn:
            gone = conn.execute(s.tags.delete().where(s.tags.c.image_id == image.id,
                                                      s.tags.c.value == tag)).rowcount
            if gone:
                self._touch(conn, image.id)
        return bool(gone)

    def list_images(self, query: ListQuery, project_id: str | None, is_admin: bool,
             marker: Image | None = None) -> list[Image]:
        """Return one page of the images ``query`` selects and the caller may see."""
        stmt = sa.select(s.images).where(*self._conditions(query, project_id, is_admin))
        keys = self._sort_keys(query)
        if marker is not None:
            stmt = stmt.where(self._after(keys, marker))
        order = [col.asc() if d == "asc" else col.desc() for _name, col, d in keys]
        stmt = stmt.order_by(*order).limit(query.limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
            return self._images(conn, rows)

    # --- members -----------------------------------------------------------------
    def members(self, image_id: str, member_id: str | None = None) -> list[Member]:
        """Return the image's members (or just ``member_id``'s membership)."""
        stmt = sa.select(s.members).where(s.members.c.image_id == image_id)
        if member_id is not None:
            stmt = stmt.where(s.members.c.member == member_id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(s.members.c.created_at, s.members.c.member)
                                ).mappings().all()
        return [Member(r["image_id"], r["member"], r["status"], r["created_at"],
                       r["updated_at"]) for r in rows]

    def add_member(self, image_id: str, member_id: str, quota: int) -> Member | None:
        """Add a pending membership; None if it exists. Raises ValueError over ``quota``."""
        now = self.clock()
        with self.engine.begin() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(s.members)
                                 .where(s.members.c.image_id == image_id)).scalar_one()
            if count + 1 > quota:
                raise ValueError(count + 1)
            try:
                with conn.begin_nested():
                    conn.execute(s.members.insert().values(
                        image_id=image_id, member=member_id, status="pending",
                        created_at=now, updated_at=now))
            except sa.exc.IntegrityError:
                return None
        return Member(image_id, member_id, "pending", now, now)

    def set_member_status(self, member: Member, status: str) -> Member:
        """Change a membership's status."""
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(s.members.update().where(s.members.c.image_id == member.image_id,
                                                  s.members.c.member == member.member_id)
                         .values(status=status, updated_at=now))
        return Member(member.image_id, member.member_id, status, member.created_at, now)

    def remove_member(self, member: Member) -> None:
        """Delete a membership."""
        with self.engine.begin() as conn:
            conn.execute(s.members.delete().where(s.members.c.image_id == member.image_id,
                                                  s.members.c.member == member.member_id))

    # --- helpers -----------------------------------------------------------------
    def _touch(self, conn: Connection, image_id: str) -> None:
        conn.execute(s.images.update().where(s.images.c.id == image_id)
                     .values(updated_at=self.clock()))

    @staticmethod
    def _write_children(conn: Connection, image_id: str, properties: dict[str, str | None],
                        tags: Sequence[str]) -> None:
        if properties:
            conn.execute(s.properties.insert(), [
                {"image_id": image_id, "name": k, "value": v} for k, v in properties.items()])
        unique = list(dict.fromkeys(tags))
        if unique:
            conn.execute(s.tags.insert(), [{"image_id": image_id, "value": t} for t in unique])

    @staticmethod
    def _images(conn: Connection, rows: Sequence[Any]) -> list[Image]:
        ids = [r["id"] for r in rows]
        props: dict[str, dict[str, str]] = {i: {} for i in ids}
        tags: dict[str, list[str]] = {i: [] for i in ids}
        if ids:
            for image_id, name, value in conn.execute(
                    sa.select(s.properties.c.image_id, s.properties.c.name,
                              s.properties.c.value)
                    .where(s.properties.c.image_id.in_(ids)).order_by(s.properties.c.name)):
                props[image_id][name] = value
            for image_id, value in conn.execute(
                    sa.select(s.tags.c.image_id, s.tags.c.value)
                    .where(s.tags.c.image_id.in_(ids)).order_by(s.tags.c.value)):
                tags[image_id].append(value)
        return [Image(**dict(r), properties=props[r["id"]], tags=tuple(tags[r["id"]]))
                for r in rows]

    @staticmethod
    def _conditions(q: ListQuery, project_id: str | None, is_admin: bool) -> list[Any]:
        img = s.images.c
        conds: list[Any] = [img.os_hidden == q.os_hidden]
        if not is_admin:
            member_of = sa.select(s.members.c.image_id).where(s.members.c.member == project_id)
            if q.member_status != "all":
                member_of = member_of.where(s.members.c.status == q.member_status)
            conds.append(sa.or_(img.owner == project_id,
                                img.visibility.in_(["public", "community"]),
                                sa.and_(img.visibility == "shared", img.id.in_(member_of))))
        if q.visibility is not None:
            conds.append(img.visibility == q.visibility)
        else:
            conds.append(sa.or_(img.visibility != "community", img.owner == project_id))
        for column, values in q.columns.items():
            conds.append(img[column].in_(list(values)))
        for name, value in q.properties.items():
            conds.append(img.id.in_(sa.select(s.properties.c.image_id).where(
                s.properties.c.name == name, s.properties.c.value == value)))
        for tag in q.tags:
            conds.append(img.id.in_(sa.select(s.tags.c.image_id).where(s.tags.c.value == tag)))
        if q.size_min is not None:
            conds.append(img.size >= q.size_min)
        if q.size_max is not None:
            conds.append(img.size <= q.size_max)
        for t in q.times:
            conds.append(_TIME_OPS[t.op](img[t.column], t.when))
        if q.protected is not None:
            conds.append(img.protected == q.protected)
        return conds

    @staticmethod
    def _sort_keys(q: ListQuery) -> list[tuple[str, Any, str]]:
        pairs = list(q.sort)
        for extra in ("created_at", "id"):
            if extra not in [k for k, _ in pairs]:
                pairs.append((extra, "desc"))
        out = []
        for name, direction in pairs:
            col: Any = s.images.c[name]
            if name in _NULL_AS:
                col = sa.func.coalesce(col, _NULL_AS[name])
            out.append((name, col, direction))
        return out

    @staticmethod
    def _after(keys: list[tuple[str, Any, str]], marker: Image) -> Any:
        """Return "sorts after ``marker``" for the keys (oslo.db's paginate_query)."""
        values = []
        for name, _col, _d in keys:
            value = getattr(marker, name)
            values.append(_NULL_AS[name] if value is None and name in _NULL_AS else value)
        branches = []
        for i, (_name, col, direction) in enumerate(keys):
            same = [keys[j][1] == values[j] for j in range(i)]
            beyond = col > values[i] if direction == "asc" else col < values[i]
            branches.append(sa.and_(*same, beyond))
        return sa.or_(*branches)
