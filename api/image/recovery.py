"""Leases of running imports, uploads and stages; the recovery of those whose process stopped.

A ``web-download`` runs in the background of one api process, an upload
(``PUT .../file``) or a stage (``PUT .../stage``) in the request of one api
process; several api processes may share one database (PostgreSQL,
multi-node). The process running one holds a *lease* (:class:`Lease`),
renewed every ``[image] import_lease_interval`` seconds: an import's is its
task's ``updated_at`` (:class:`ImportLease`), an upload's or a stage's the
``updated_at`` of its ``image_upload`` row (:mod:`nubis.api.image.uploads`). If
the process stops (killed, crashed, host lost), the lease is no longer renewed;
once it is older than ``import_lease_timeout`` (several renewal periods, never
less than ``import_timeout``) the work counts as abandoned.

Every api process sweeps for abandoned work when it starts (or, served
without an ASGI lifespan, when its image API is first called) and then every
``import_recovery_interval`` seconds (:class:`ImportRecovery`), in bounded
batches found through the ``(status, updated_at)`` indexes of both tables.
Taking over is a conditional update (still held by nobody new *and* lease
still expired), so exactly one process wins and a lease renewed meanwhile is
left alone. For an import, the winner, in this order:

1. fails the task ("the import was interrupted") and stamps the image (still
   ``importing``) with its claim time — one transaction;
2. deletes the import's bytes: the partial ``web-download`` objects (named
   after the task, :func:`import_object_name`, so no other import of the image
   shares them) and staged ``glance-direct`` data the image row points to;
3. puts the image back to ``queued`` without data (unless another import of it
   is running).

A process that stops between 1 and 3 leaves an ``importing`` image without a
``processing`` task; the sweep takes such orphans over once their claim is as
old as a lease (a conditional update again) and finishes 2 and 3. A process
whose lease was taken over while it still ran (stalled longer than the bound)
notices at its next renewal: its import is cancelled, deletes what it stored and
changes nothing else (every end of an import is conditional on the task still
being ``processing``).

For an upload (image ``saving``) or a stage (image ``uploading``) the winner
marks the row ``interrupted`` (its claim time as ``updated_at``), deletes the
partial objects (``<image>-<upload>``, its segments until one is missing —
named after the upload, so a later upload of the same image is never touched),
then, in one transaction, drops the row and puts the image back to ``queued``
without data. A recoverer that stops half-way leaves an ``interrupted`` row,
claimed again once the claim is a lease old; one that cannot delete the bytes
yet leaves the image ``saving``/``uploading`` until a later sweep can. A
process whose upload was taken over stops storing at its next received piece
(or, at the latest, its final conditional transition fails), deletes only its
own objects and answers 409. **A stage cut off goes back to ``queued``**, as a
stage cut by the client does here and as Glance's ``_unstage`` does (staged
data removed, image ``queued``): half-staged bytes cannot be imported, and
``queued`` is the one status from which the owner can stage, upload or import
again without an operator; ``uploading`` with no usable data would be stuck.

Leases are judged with each process's clock: the processes' clocks must agree
to well within ``import_lease_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

import sqlalchemy as sa
from nubis.api.image import schema as s
from nubis.api.image.config import ImageConfig
from nubis.api.image.data import delete_image_data
from nubis.api.image.store import ImageStore
from nubis.api.image.swift import StoreError, SwiftClient
from nubis.api.image.tasks import Task, TaskStore
from nubis.api.image.uploads import UploadStore

LOG = logging.getLogger("nubis.api.image")

#: Most abandoned imports (and orphaned images) one sweep takes over.
BATCH = 100
#: Most segments a partial ``web-download`` is searched for (a 1 TiB cap in 1 MiB
#: segments; the search stops at the first missing one).
MAX_SEGMENTS = 1 << 20


def import_object_name(image_id: str, task_id: str) -> str:
    """Return the object name a ``web-download`` stores its bytes under."""
    return f"{image_id}-{task_id}"


def interrupted_message(bound: float) -> str:
    """Return the failure message of an import taken over after its process stopped."""
    return (f"The import was interrupted: the process running it stopped (its lease was "
            f"not renewed for {bound:g} s). The image is queued again.")


class Lease:
    """Renew a lease every ``interval`` seconds while the ``async with`` body runs.

    ``renew()`` tells whether the lease is still held. Once a renewal finds it
    taken over (another process judged this one stopped), :attr:`lost` is set
    and, with ``cancel``, the task running the body is cancelled (its own
    cleanup still runs); without, the body checks :attr:`lost` itself.
    """

    def __init__(self, renew: Callable[[], bool], interval: float, what: str, *,
                 cancel: bool = False) -> None:
        self.renew = renew
        self.interval = interval
        self.what = what
        self.cancel = cancel
        self.lost = False
        self._keeper: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        """Start renewing."""
        job = asyncio.current_task()
        assert job is not None
        self._keeper = asyncio.get_running_loop().create_task(
            self._keep(job), name=f"lease of {self.what}")
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """Stop renewing."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None and not keeper.done():
            keeper.cancel()
            await asyncio.wait([keeper])

    async def _keep(self, job: asyncio.Task[object]) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                held = self.renew()
            except sa.exc.DBAPIError as exc:  # try again at the next period
                LOG.warning("cannot renew the lease of %s: %s", self.what, exc.orig)
                continue
            if not held:
                LOG.warning("%s was taken over by another process; stopping it", self.what)
                self.lost = True
                if self.cancel:
                    job.cancel()
                return


class ImportLease(Lease):
    """Renew one running import's lease; cancel the import once it is taken over."""

    def __init__(self, records: TaskStore, task_id: str, interval: float) -> None:
        super().__init__(lambda: records.renew(task_id), interval, f"import task {task_id}",
                         cancel=True)
        self.records = records
        self.task_id = task_id


class ImportRecovery:
    """Find abandoned imports, uploads and stages and undo them (see the module docstring)."""

    def __init__(self, config: ImageConfig, store: ImageStore, records: TaskStore,
                 swift: SwiftClient, clock: Callable[[], datetime] | None = None,
                 uploads: UploadStore | None = None) -> None:
        self.config = config
        self.store = store
        self.records = records
        self.swift = swift
        self.clock = clock or store.clock
        self.uploads = uploads or UploadStore(store.engine, self.clock)
        self._loop_task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        """Start the periodic sweep in the running event loop (once per process)."""
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(
                self.run(), name="image import recovery")

    async def run(self) -> None:
        """Sweep now, then every ``import_recovery_interval`` seconds, forever."""
        while True:
            try:
                await self.sweep()
            except Exception:  # a database or object-store fault: try at the next sweep
                LOG.exception("image import recovery sweep failed")
            await asyncio.sleep(self.config.import_recovery_interval)

    async def sweep(self) -> list[str]:
        """Take over abandoned imports, uploads and stages once; return the images requeued."""
        bound = self.config.import_lease_timeout
        cutoff = self.clock() - timedelta(seconds=bound)
        requeued: list[str] = []
        for task in self.records.expired(cutoff, BATCH):
            if self.records.interrupt(task, cutoff, interrupted_message(bound)):
                LOG.warning("import task %s of image %s was abandoned (no lease renewal "
                            "since %s); undoing it", task.id, task.image_id, task.updated_at)
                if await self._undo(task.image_id, task):
                    requeued.append(task.image_id)
        for image_id in self._orphans(cutoff):
            if self._claim(image_id, cutoff) and await self._undo(
                    image_id, self.records.latest(image_id)):
                requeued.append(image_id)
        return requeued + await self._sweep_uploads(cutoff)

    async def _sweep_uploads(self, cutoff: datetime) -> list[str]:
        """Take over uploads and stages whose lease predates ``cutoff``; return the requeued."""
        requeued: list[str] = []
        for upload in self.uploads.expired(cutoff, BATCH):
            if not self.uploads.claim(upload, cutoff):
                continue  # renewed meanwhile, or another process won
            LOG.warning("upload %s of image %s was abandoned (no lease renewal since %s); "
                        "undoing it", upload.id, upload.image_id, upload.updated_at)
            try:
                await delete_partial(self.swift, upload.name)
            except StoreError as exc:  # the claim ages like a lease: a later sweep retries
                LOG.warning("cannot delete the bytes of interrupted upload %s of image %s "
                            "yet: %s", upload.id, upload.image_id, exc)
                continue
            if self.uploads.release(upload):
                requeued.append(upload.image_id)
        return requeued

    def _orphans(self, cutoff: datetime) -> list[str]:
        """Return ``importing`` images without a running import, claimed before ``cutoff``."""
        img = s.images
        q = (sa.select(img.c.id).where(img.c.status == "importing", img.c.updated_at < cutoff,
                                       ~_running_import())
             .order_by(img.c.updated_at).limit(BATCH))
        with self.store.engine.connect() as conn:
            return [row.id for row in conn.execute(q)]

    def _claim(self, image_id: str, cutoff: datetime) -> bool:
        """Take an orphaned image over (a conditional update: one process wins)."""
        img = s.images
        with self.store.engine.begin() as conn:
            return bool(conn.execute(img.update().where(
                img.c.id == image_id, img.c.status == "importing", img.c.updated_at < cutoff,
                ~_running_import()).values(updated_at=self.clock())).rowcount)

    async def _undo(self, image_id: str, task: Task | None) -> bool:
        """Delete an interrupted import's bytes, then requeue its image; tell if requeued.

        If the bytes cannot be deleted now, the image stays ``importing`` and a
        later sweep (once this claim is as old as a lease) tries again.
        """
        image = self.store.get(image_id)
        if image is None or image.status != "importing":
            return False
        try:
            if task is not None and task.image_id == image_id:
                await delete_partial(self.swift, import_object_name(image_id, task.id))
            await delete_image_data(self.swift, image.location, image.segments)
        except StoreError as exc:  # the object store: a later sweep tries again
            LOG.warning("cannot delete the bytes of interrupted import of image %s yet: %s",
                        image_id, exc)
            return False
        img = s.images
        with self.store.engine.begin() as conn:
            return bool(conn.execute(img.update().where(
                img.c.id == image_id, img.c.status == "importing", ~_running_import())
                .values(status="queued", updated_at=self.clock(), location=None, segments=0,
                        size=None, virtual_size=None, checksum=None, os_hash_algo=None,
                        os_hash_value=None)).rowcount)


def _running_import() -> sa.ColumnElement[bool]:
    """Return "the image has a ``processing`` task" (for a statement on ``image_image``)."""
    t = s.tasks
    return sa.exists().where(t.c.image_id == s.images.c.id, t.c.status == "processing")


async def delete_partial(swift: SwiftClient, name: str) -> None:
    """Delete whatever an interrupted writer of ``name`` stored.

    The object (or SLO manifest) ``name`` and its segments ``name-00001``, ...:
    a writer closes each segment before it opens the next, so the search stops
    at the first one missing. Absent objects are fine.
    """
    await swift.delete(name)
    for index in range(1, MAX_SEGMENTS + 1):
        if not await swift.delete(f"{name}-{index:05d}"):
            return
