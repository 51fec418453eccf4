"""Uploads and stages in progress: their rows, leases and conditional ends.

An upload (``PUT .../file``: ``queued`` → ``saving`` → ``active``) or a stage
(``PUT .../stage``: ``queued`` → ``uploading``, staged) that is receiving bytes
has a row in ``image_upload`` (:data:`~nubis.api.image.schema.uploads`), made
in the same transaction that moves its image out of ``queued``. The row's id
names the objects the bytes go to (:func:`upload_object_name`), so two uploads
of one image (one stalled, one started after it was recovered) never share an
object. Its ``updated_at`` is the lease the serving process renews
(:meth:`UploadStore.renew`); every end is conditional on still holding it:

- :meth:`UploadStore.finish` — the image ``working`` → ``done`` with its data,
  and the row gone, in one transaction;
- :meth:`UploadStore.abandon` — the upload failed in its own process (the client
  went away, the object store failed): the image back to ``queued``, the row gone;
- :meth:`UploadStore.claim` / :meth:`UploadStore.release` — the recovery
  (:mod:`nubis.api.image.recovery`) takes over an upload whose lease lapsed,
  deletes its bytes, then requeues the image and drops the row.

A row also tells a staged image (``uploading``, no row) from one still being
staged (``uploading`` with a row): only the first may be imported.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from nubis.api.image import schema as s
from sqlalchemy.engine import Engine

#: The serving process holds the lease.
RECEIVING = "receiving"
#: A recovery took the upload over (its bytes are being deleted).
INTERRUPTED = "interrupted"
#: Image statuses of an upload (``saving``) and of a stage (``uploading``) in progress.
WORKING = ("saving", "uploading")
#: The image columns describing its data, as a requeued image has them.
NO_DATA: dict[str, Any] = {"location": None, "segments": 0, "size": None,
                           "virtual_size": None, "checksum": None, "os_hash_algo": None,
                           "os_hash_value": None}


def upload_object_name(image_id: str, upload_id: str) -> str:
    """Return the object name an upload or a stage stores its bytes under."""
    return f"{image_id}-{upload_id}"


@dataclass(frozen=True)
class UploadRecord:
    """One upload or stage in progress."""

    id: str
    image_id: str
    status: str
    updated_at: datetime

    @property
    def name(self) -> str:
        """Return the object name its bytes go to."""
        return upload_object_name(self.image_id, self.id)


class UploadStore:
    """The ``image_upload`` rows."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def begin(self, image_id: str, working: str) -> UploadRecord | None:
        """Move the image ``queued`` → ``working`` and record the upload (one transaction).

        None when the image was not ``queued`` (another operation won).
        """
        now, upload_id = self.clock(), str(uuid.uuid4())
        img = s.images
        with self.engine.begin() as conn:
            if not conn.execute(img.update().where(img.c.id == image_id,
                                                   img.c.status == "queued")
                                .values(status=working, updated_at=now)).rowcount:
                return None
            conn.execute(s.uploads.insert().values(id=upload_id, image_id=image_id,
                                                   status=RECEIVING, created_at=now,
                                                   updated_at=now))
        return UploadRecord(upload_id, image_id, RECEIVING, now)

    def renew(self, upload_id: str) -> bool:
        """Renew an upload's lease; False if it is no longer held (taken over)."""
        up = s.uploads
        with self.engine.begin() as conn:
            return bool(conn.execute(up.update().where(up.c.id == upload_id,
                                                       up.c.status == RECEIVING)
                                     .values(updated_at=self.clock())).rowcount)

    def finish(self, upload: UploadRecord, working: str, done: str, **values: Any) -> bool:
        """Make the stored data the image's (``working`` → ``done``); tell if it was.

        False, and nothing changed, when the lease was taken over or the image
        is gone (deleted meanwhile); the caller then deletes its bytes and
        drops the row (:meth:`drop`).
        """
        img, up = s.images, s.uploads
        with self.engine.begin() as conn:
            if not conn.execute(img.update().where(
                    img.c.id == upload.image_id, img.c.status == working, _held(upload.id))
                    .values(status=done, updated_at=self.clock(), **values)).rowcount:
                return False
            conn.execute(up.delete().where(up.c.id == upload.id))
        return True

    def abandon(self, upload: UploadRecord, working: str) -> bool:
        """Put the image of a failed upload back to ``queued``; drop the row.

        Only while the lease is held (a recovery that took the upload over
        does both itself). Tell whether it was.
        """
        img = s.images
        with self.engine.begin() as conn:
            conn.execute(img.update().where(
                img.c.id == upload.image_id, img.c.status == working, _held(upload.id))
                .values(status="queued", updated_at=self.clock(), **NO_DATA))
            return self._drop(conn, upload.id)

    def drop(self, upload: UploadRecord) -> bool:
        """Forget an upload whose image is gone, unless it was taken over."""
        with self.engine.begin() as conn:
            return self._drop(conn, upload.id)

    def expired(self, cutoff: datetime, limit: int) -> list[UploadRecord]:
        """Return up to ``limit`` uploads whose lease (or recovery claim) predates ``cutoff``."""
        up = s.uploads
        q = (sa.select(up).where(up.c.status.in_([RECEIVING, INTERRUPTED]),
                                 up.c.updated_at < cutoff)
             .order_by(up.c.updated_at).limit(limit))
        with self.engine.connect() as conn:
            return [UploadRecord(r.id, r.image_id, r.status, r.updated_at)
                    for r in conn.execute(q)]

    def claim(self, upload: UploadRecord, cutoff: datetime) -> bool:
        """Take an upload over if its lease still predates ``cutoff``; tell whether this won.

        A conditional update: of several processes one wins, a lease renewed
        meanwhile is left alone, and the serving process, were it still
        running, can no longer renew, finish or abandon it. A recoverer that
        stopped half-way leaves an ``interrupted`` row whose claim ages like a
        lease, and is claimed again.
        """
        up = s.uploads
        with self.engine.begin() as conn:
            return bool(conn.execute(up.update().where(
                up.c.id == upload.id, up.c.status.in_([RECEIVING, INTERRUPTED]),
                up.c.updated_at < cutoff)
                .values(status=INTERRUPTED, updated_at=self.clock())).rowcount)

    def release(self, upload: UploadRecord) -> bool:
        """End a claimed upload whose bytes are gone: image ``queued`` without data.

        Tell whether an image was requeued (not if it was deleted meanwhile,
        or another recoverer released it first).
        """
        img, up = s.images, s.uploads
        with self.engine.begin() as conn:
            if not conn.execute(up.delete().where(up.c.id == upload.id,
                                                  up.c.status == INTERRUPTED)).rowcount:
                return False
            return bool(conn.execute(img.update().where(
                img.c.id == upload.image_id, img.c.status.in_(WORKING))
                .values(status="queued", updated_at=self.clock(), **NO_DATA)).rowcount)

    @staticmethod
    def _drop(conn: sa.Connection, upload_id: str) -> bool:
        up = s.uploads
        return bool(conn.execute(up.delete().where(up.c.id == upload_id,
                                                   up.c.status == RECEIVING)).rowcount)


def _held(upload_id: str) -> sa.ColumnElement[bool]:
    """Return "upload ``upload_id`` still holds its lease" (for a statement on images)."""
    up = s.uploads
    return sa.exists().where(up.c.id == upload_id, up.c.status == RECEIVING)


def staging(image_id_column: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """Return "a stage (or upload) of this image is still receiving or being recovered"."""
    return sa.exists().where(s.uploads.c.image_id == image_id_column)
