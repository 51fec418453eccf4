"""``PUT|GET /v2/images/{image_id}/file``: image bytes in and out, streamed.

Upload: ``queued`` → ``saving`` (a compare-and-swap that also records the
upload, :mod:`nubis.api.image.uploads`, so a second upload gets 409) → bytes
streamed through :class:`~nubis.api.image.data.ImageWriter` under an object
name of this upload's own (``<image>-<upload>``) → ``active`` with size,
checksums and virtual size. A stage (``PUT .../stage``) is the same with
``uploading`` as both its working and its final status. Any failure — a cut
body, the size cap, the object store — deletes what was stored and puts the
image back to ``queued``. If the image was deleted meanwhile, its bytes are
removed and the answer is 410, as Glance does. While the bytes arrive, this
process renews the upload's lease; if its process dies, the recovery
(:mod:`nubis.api.image.recovery`) undoes the upload, and if this process only
stalled past the lease timeout, it finds the upload taken over, deletes its
own bytes and answers 409.

Download: the object is streamed from the object store to the client with
``Content-MD5`` (the image's checksum); ``Range`` is passed through.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

import falcon
import falcon.asgi
from nubis.api.image.data import ImageWriter, StoredImage, delete_image_data, too_large
from nubis.api.image.errors import (
    GoneError,
    NoContent,
    RangeNotSatisfiableError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
)
from nubis.api.image.model import Image
from nubis.api.image.policy import target
from nubis.api.image.recovery import Lease
from nubis.api.image.service import ImageService
from nubis.api.image.swift import StoreError
from nubis.api.image.uploads import UploadRecord, UploadStore
from nubis.api.shared.errors import ApiError, BadRequestError, ConflictError, ForbiddenError
from nubis.common.httpclient import ClientResponse, HTTPClientError

LOG = logging.getLogger("nubis.api.image")

Req = falcon.asgi.Request
Resp = falcon.asgi.Response

#: Largest piece handed to the server per write when relaying a download.
#: PERF(bench image: download): fewer, larger ASGI sends.
RELAY_BYTES = 1024 * 1024
#: ASGI scope key where :class:`BodyWatch` records how the request body ended.
BODY_STATE = "nubis.body"


@dataclass
class BodyState:
    """Whether the client sent its whole body (``complete``) or went away."""

    complete: bool = False
    disconnected: bool = False


class CutUploadError(BadRequestError):
    """The client's body ended before it was complete."""


class UploadTakenOverError(ConflictError):
    """The upload's lease lapsed and a recovery took it over (409)."""


class ImageFile:
    """The image data resource."""

    def __init__(self, svc: ImageService) -> None:
        self.svc = svc
        self.uploads = UploadStore(svc.store.engine, svc.store.clock)

    async def on_put(self, req: Req, resp: Resp, image_id: str) -> None:
        """Upload the image data."""
        await self.receive(req, image_id, "saving", "active")
        resp.status = falcon.HTTP_204

    async def receive(self, req: Req, image_id: str, working: str, done: str) -> None:
        """Store a queued image's data: ``queued`` → ``working`` → ``done``.

        An upload ends ``active``; a stage (interoperable import) ends
        ``uploading`` with the bytes already in place, for the import to finish.
        While the bytes arrive, this process renews the upload's lease.
        """
        ctx = self.svc.caller(req)
        image, membership = self.svc.find(ctx, image_id)
        self.svc.policy.enforce("upload_image", ctx, target(image, membership))
        media = (req.content_type or "").split(";")[0].strip().lower()
        if media != "application/octet-stream":
            raise UnsupportedMediaTypeError(f"Invalid content type {req.content_type}")
        if image.status != "queued":
            raise _transition_refused(image.status)
        if image.disk_format is None or image.container_format is None:
            raise BadRequestError("Properties 'container_format' and 'disk_format' must be "
                                  "set prior to saving data.")
        length = req.content_length
        if length is not None and length > self.svc.config.size_cap:
            raise too_large(self.svc.config.size_cap)
        upload = self.uploads.begin(image.id, working)
        if upload is None:
            current = self.svc.store.get(image.id)
            raise _transition_refused(current.status if current else "deleted")

        def cut() -> bool:
            state: BodyState | None = req.scope.get(BODY_STATE)
            return state is not None and not state.complete
        lease = Lease(lambda: self.uploads.renew(upload.id),
                      self.svc.config.import_lease_interval,
                      f"upload {upload.id} of image {image.id}")
        try:
            async with lease:
                stored = await self.store(image, _while_held(req.stream, lease, upload),
                                          length, cut, name=upload.name)
        except BaseException:
            self.uploads.abandon(upload, working)  # a no-op once taken over
            raise
        await self.commit(upload, stored, working, done)

    async def commit(self, upload: UploadRecord, stored: StoredImage, working: str,
                     done: str) -> None:
        """Make stored data the image's: ``working`` → ``done``.

        If that fails, the bytes are deleted and the answer is 410 (the image
        was deleted meanwhile) or 409 (the upload was taken over).
        """
        if self.uploads.finish(
                upload, working, done, size=stored.size, checksum=stored.checksum,
                os_hash_algo="sha512", os_hash_value=stored.os_hash_value,
                virtual_size=stored.virtual_size, location=stored.location,
                segments=stored.segments):
            return
        try:
            await delete_image_data(self.svc.swift, stored.location, stored.segments)
        except StoreError as exc:  # the row stays: the recovery deletes them later
            LOG.warning("could not delete the bytes of upload %s of image %s: %s",
                        upload.id, upload.image_id, exc)
        else:
            self.uploads.drop(upload)
        if self.svc.store.get(upload.image_id) is None:
            raise GoneError(f"Image {upload.image_id} could not be found after upload. The "
                            "image may have been deleted during the upload, cleaning up the "
                            "chunks uploaded.")
        raise _taken_over(upload)

    async def store(self, image: Image, chunks: AsyncIterable[bytes], length: int | None,
                    cut: Callable[[], bool] = lambda: False, *,
                    name: str | None = None) -> StoredImage:
        """Stream ``chunks`` into the object store; on any failure undo and re-raise.

        ``cut()`` tells, once ``chunks`` ended, whether the sender stopped early.
        The bytes are stored as object ``name`` (default: the image id). When
        anything fails, what was stored is deleted (the caller puts the image
        back to ``queued``).
        """
        cfg = self.svc.config
        writer: ImageWriter | None = None
        try:
            await self.svc.swift.ensure_container()
            segment = min(cfg.segment_size, await self.svc.swift.max_file_size())
            writer = ImageWriter(self.svc.swift, name or image.id, length=length,
                                 segment_size=segment, size_cap=cfg.size_cap,
                                 disk_format=image.disk_format)
            async for chunk in chunks:
                await writer.write(chunk)
            if cut() or (length is not None and writer.size != length):
                raise CutUploadError("The image data was cut off before its end; nothing "
                                     "was stored.")
            return await writer.finish()
        except BaseException as exc:
            if writer is not None:
                await writer.abort()
            if isinstance(exc, StoreError):
                LOG.warning("upload of image %s failed in the object store: %s", image.id, exc)
                raise ServiceUnavailableError("Error in store: the object store could not "
                                              "save the image data.") from None
            if isinstance(exc, HTTPClientError):
                raise ServiceUnavailableError("The object store is unreachable.") from None
            raise

    async def on_get(self, req: Req, resp: Resp, image_id: str) -> None:
        """Download the image data."""
        ctx = self.svc.caller(req)
        image, membership = self.svc.find(ctx, image_id)
        self.svc.policy.enforce("download_image", ctx, target(image, membership))
        if image.status == "deactivated" and not ctx.is_admin:
            raise ForbiddenError("The requested image has been deactivated. Image data "
                                 "download is forbidden.")
        if image.status not in ("active", "deactivated") or not image.location:
            raise NoContent("The requested image has no data.")
        try:
            got = await self.svc.swift.get(image.location, req.get_header("Range"))
        except StoreError as exc:
            raise ServiceUnavailableError(str(exc)) from None
        if got.status in (404, 416):
            await got.release()
            if got.status == 416:
                raise RangeNotSatisfiableError("Requested range not satisfiable")
            LOG.warning("image %s is active but its data is missing", image.id)
            raise NoContent("The image data could not be found.")
        if got.status not in (200, 206):
            await got.release()
            raise ServiceUnavailableError(f"The object store answered {got.status}.")
        resp.content_type = "application/octet-stream"
        resp.content_length = int(got.headers.get("content-length", image.size or 0))
        if got.status == 206:
            resp.status = falcon.HTTP_206
            resp.set_header("Content-Range", got.headers.get("content-range", ""))
        elif image.checksum:
            resp.set_header("Content-MD5", image.checksum)
        resp.stream = _relay(got, image.id)


async def _relay(got: ClientResponse, image_id: str) -> AsyncIterator[bytes]:
    """Yield the object store's body; a failure mid-way cuts the client's connection."""
    try:
        while chunk := await got.read_some(RELAY_BYTES):
            yield chunk
    except HTTPClientError as exc:
        LOG.warning("download of image %s broke off: %s", image_id, exc)
        raise
    finally:
        got.close()  # a no-op after the whole body; drops the connection otherwise


async def _while_held(chunks: AsyncIterable[bytes], lease: Lease,
                      upload: UploadRecord) -> AsyncIterator[bytes]:
    """Yield ``chunks`` while ``lease`` is held; stop with a 409 once it was taken over."""
    async for chunk in chunks:
        if lease.lost:
            raise _taken_over(upload)
        yield chunk
    if lease.lost:
        raise _taken_over(upload)


def _taken_over(upload: UploadRecord) -> UploadTakenOverError:
    return UploadTakenOverError(
        f"The upload to image {upload.image_id} was interrupted: this server did not renew "
        "its lease in time and the upload was taken over and undone. Nothing was stored; "
        "the image is queued again. Upload the data again.")


def _transition_refused(status: str) -> ApiError:
    return ConflictError(f"Image status transition from {status} to saving is not allowed")
