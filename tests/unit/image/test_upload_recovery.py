"""Leases of uploads and stages, and the recovery of those whose api process stopped.

As in ``test_import_recovery``: two recoverers on one SQLite database stand for
two api processes, the clock is injected and the object store is a set of names.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
import sqlalchemy as sa
from nubis.api.image import schema as s
from nubis.api.image.data import StoredImage
from nubis.api.image.errors import GoneError
from nubis.api.image.recovery import Lease
from nubis.api.image.service import ImageService
from nubis.api.image.transfer import ImageFile, UploadTakenOverError, _while_held
from nubis.api.image.uploads import INTERRUPTED, RECEIVING, UploadRecord, UploadStore

from tests.unit.image.test_import_recovery import BOUND, CONFIG, World


class Uploads(World):
    """The import-recovery world plus the upload rows."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.uploads = UploadStore(self.engine, self.clock)

    def begin_upload(self, working: str = "saving") -> UploadRecord:
        upload = self.uploads.begin(self.image(), working)
        assert upload is not None and self.status(upload.image_id) == working
        return upload

    def stored(self, upload: UploadRecord, segments: int = 2) -> set[str]:
        """Put a partial upload's objects in the store; return their names."""
        names = {upload.name, *(f"{upload.name}-{i:05d}" for i in range(1, segments + 1))}
        self.swift.objects |= names
        return names

    def rows(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {r.id: r.status for r in conn.execute(sa.select(s.uploads))}


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Uploads]:
    w = Uploads(tmp_path)
    yield w
    w.engine.dispose()


def _stored(name: str, segments: int = 0) -> StoredImage:
    return StoredImage(name, segments, 5, "c" * 32, "h" * 128, 5)


def test_an_expired_upload_is_recovered_once_and_a_renewed_one_left_alone(up: Uploads) -> None:
    stopped, live = up.begin_upload(), up.begin_upload()
    partial = up.stored(stopped)
    # the live upload's objects, and another object of the stopped upload's image
    others = up.stored(live) | {stopped.image_id, f"{stopped.image_id}-x-00001"}
    up.swift.objects |= others
    up.clock.advance(5)
    assert up.uploads.renew(live.id)  # the live process renews; the other stopped
    up.clock.advance(2)
    cutoff = up.clock.now - BOUND
    assert [u.id for u in up.uploads.expired(cutoff, 10)] == [stopped.id]
    assert up.sweep(0) == [stopped.image_id]
    assert up.sweep(1) == []  # the second process finds nothing left to take over
    assert up.swift.objects == others and not partial & up.swift.objects
    image = up.store.get(stopped.image_id)
    assert image is not None and image.status == "queued"
    assert (image.location, image.size, image.checksum) == (None, None, None)
    assert up.rows() == {live.id: RECEIVING}
    # the stopped process, were it still alive, can neither renew, finish nor requeue
    assert not up.uploads.renew(stopped.id)
    assert not up.uploads.finish(stopped, "saving", "active", location=stopped.name)
    assert not up.uploads.abandon(stopped, "saving")
    # the image is queued again: a new upload of it works
    again = up.uploads.begin(stopped.image_id, "saving")
    assert again is not None and again.name != stopped.name
    assert up.uploads.finish(again, "saving", "active", location=again.name, size=5)
    assert up.status(stopped.image_id) == "active"
    assert up.uploads.finish(live, "saving", "active", location=live.name, size=3)
    assert up.status(live.image_id) == "active" and up.rows() == {}


def test_two_recoverers_cannot_both_claim_an_upload(up: Uploads) -> None:
    upload = up.begin_upload()
    up.clock.advance(7)
    cutoff = up.clock.now - BOUND
    [seen] = up.uploads.expired(cutoff, 10)
    assert up.uploads.claim(seen, cutoff)
    assert not up.uploads.claim(seen, cutoff)
    assert up.rows() == {upload.id: INTERRUPTED}
    # a lease renewed after the other process read it is not taken over
    other = up.begin_upload()
    up.clock.advance(7)
    [stale] = [u for u in up.uploads.expired(up.clock.now - BOUND, 10) if u.id == other.id]
    assert up.uploads.renew(other.id)
    assert not up.uploads.claim(stale, up.clock.now - BOUND)
    assert up.rows()[other.id] == RECEIVING


def test_an_interrupted_stage_is_queued_again_and_a_staged_image_kept(up: Uploads) -> None:
    cut, whole, other = (up.begin_upload("uploading") for _ in range(3))
    up.stored(cut, segments=1)
    kept = up.stored(whole, segments=0) | up.stored(other, segments=0)
    for done in (whole, other):
        assert up.uploads.finish(done, "uploading", "uploading", location=done.name, size=5)
    # only a finished stage may be imported (the cut one's row is still there)
    assert up.records.begin(up.ctx, cut.image_id, "uploading", "r", {}) is None
    task_id = up.records.begin(up.ctx, other.image_id, "uploading", "r", {})
    assert task_id is not None and up.records.succeed(task_id, other.image_id)
    up.clock.advance(7)
    assert up.sweep() == [cut.image_id]
    assert up.status(cut.image_id) == "queued" and up.swift.objects == kept
    staged = up.store.get(whole.image_id)
    assert staged is not None and (staged.status, staged.location) == ("uploading", whole.name)
    assert up.status(other.image_id) == "active"
    assert up.records.begin(up.ctx, whole.image_id, "uploading", "r", {}) is not None


def test_a_half_done_or_refused_recovery_is_finished_by_a_later_sweep(up: Uploads) -> None:
    upload = up.begin_upload()
    up.stored(upload)
    up.clock.advance(7)
    # a recoverer claimed the upload, then stopped before deleting anything
    assert up.uploads.claim(upload, up.clock.now - BOUND)
    assert up.sweep() == []  # its claim is fresh: it may still be working
    assert up.status(upload.image_id) == "saving"
    up.clock.advance(7)
    up.swift.broken = True  # the object store refuses: the image stays saving
    assert up.sweep(1) == [] and up.status(upload.image_id) == "saving"
    up.swift.broken = False
    up.clock.advance(7)
    assert up.sweep(0) == [upload.image_id]
    assert up.swift.objects == set() and up.rows() == {}


def test_an_upload_whose_image_was_deleted_is_cleaned_up(up: Uploads) -> None:
    upload = up.begin_upload()
    up.stored(upload)
    assert up.store.delete(upload.image_id)
    up.clock.advance(7)
    assert up.sweep() == []  # no image to requeue, but the bytes and the row go
    assert up.swift.objects == set() and up.rows() == {}


def _files(up: Uploads) -> ImageFile:
    svc = SimpleNamespace(store=up.store, swift=up.swift, config=CONFIG)
    return ImageFile(cast(ImageService, svc))


def test_a_stalled_upload_taken_over_deletes_only_its_bytes_and_answers_409(
        up: Uploads) -> None:
    upload = up.begin_upload()
    mine = up.stored(upload, segments=0)
    up.clock.advance(7)
    assert up.uploads.claim(upload, up.clock.now - BOUND)
    assert up.uploads.release(upload)  # recovered (its bytes looked absent then)
    again = up.uploads.begin(upload.image_id, "saving")  # a new upload started
    assert again is not None
    theirs = up.stored(again)
    with pytest.raises(UploadTakenOverError) as caught:
        asyncio.run(_files(up).commit(upload, _stored(upload.name), "saving", "active"))
    assert caught.value.status == 409 and "taken over" in caught.value.message
    assert up.swift.objects == theirs and not mine & up.swift.objects
    assert up.rows() == {again.id: RECEIVING} and up.status(upload.image_id) == "saving"


def test_an_upload_of_a_deleted_image_answers_410_and_forgets_itself(up: Uploads) -> None:
    upload = up.begin_upload()
    up.stored(upload, segments=0)
    assert up.store.delete(upload.image_id)
    with pytest.raises(GoneError):
        asyncio.run(_files(up).commit(upload, _stored(upload.name), "saving", "active"))
    assert up.swift.objects == set() and up.rows() == {}


def test_a_lost_lease_stops_the_stream_with_a_409(up: Uploads) -> None:
    upload = up.begin_upload()
    received: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:  # bounded: at most 2000 pieces
        for _ in range(2000):
            yield b"x"
            await asyncio.sleep(0.005)

    async def scenario() -> None:
        lease = Lease(lambda: up.uploads.renew(upload.id), 0.001, "test upload")
        async with lease:
            async for piece in _while_held(body(), lease, upload):
                received.append(piece)
                if len(received) == 3:  # another process takes the upload over
                    up.clock.advance(30)
                    assert up.uploads.claim(upload, up.clock.now + BOUND)

    with pytest.raises(UploadTakenOverError):
        asyncio.run(scenario())
    assert 3 <= len(received) < 2000
