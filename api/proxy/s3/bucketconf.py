"""Bucket configurations kept as container sysmeta (CORS rules, lifecycle rules).

A bucket is a container of its owner's account; a configuration S3 attaches
to it is one ``x-container-sysmeta-s3-*`` value, which Swift clients can
neither see nor set. Reads use the proxy's cached container info (the CORS
answers of every request with an ``Origin``); writes go to every container
replica and drop this worker's cached info.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nubis.api.proxy import container
from nubis.api.proxy.base import container_info
from nubis.api.proxy.context import ContainerCtx, Resp
from nubis.api.proxy.s3.auth import check_content_md5
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.request import S3Req, bytes_body

#: The largest configuration document accepted (S3 caps CORS at 64 KiB).
MAX_DOC = 64 * 1024


async def read(req: S3Req, account: str, name: str) -> str | None:
    """Return sysmeta ``name`` of the request's bucket in ``account`` (NoSuchBucket)."""
    info = await container_info(req.ctx.state, account, req.bucket)
    if info.status == 404:
        raise S3Error("NoSuchBucket")
    if not info.exists:
        raise S3Error("ServiceUnavailable")
    value = info.headers.get(name)
    return value or None


async def write(req: S3Req, name: str, value: str) -> None:
    """Set (``value`` empty: remove) sysmeta ``name`` of the caller's bucket."""
    await read(req, req.account, name)  # NoSuchBucket before any write
    base = req.ctx
    cctx = ContainerCtx(state=base.state, method="POST", path=base.path, query={},
                        headers={}, body=bytes_body(b"", base.state.conf.client_timeout),
                        account=req.account, trans_id=base.trans_id, container=req.bucket)
    status = await container.write_container(cctx, "POST", {name: value})
    if status == 404:
        raise S3Error("NoSuchBucket")
    if status >= 300:
        raise S3Error("ServiceUnavailable")


async def read_body(req: S3Req) -> bytes:
    """Return a configuration request's body (``Content-MD5`` checked when sent)."""
    body = await req.ctx.body.read_all(MAX_DOC)
    if not body:
        raise S3Error("MissingRequestBodyError", "Request Body is empty", 400)
    check_content_md5(req.ctx.headers, body)
    return body


async def handle(req: S3Req, name: str, parse: Callable[[bytes], Sequence[Any]],
                 encode: Callable[[Any], str], decode: Callable[[str | None], Sequence[Any]],
                 render: Callable[[Any], bytes], missing: tuple[str, str]) -> Resp:
    """Answer Get/Put/Delete of the bucket configuration kept in sysmeta ``name``.

    Args:
        req: The request.
        name: The container sysmeta holding the configuration.
        parse: Checks a PUT document; returns its rules (S3Error when bad).
        encode: Returns the stored form of rules.
        decode: Returns the rules of a stored form (empty: none).
        render: Returns the GET document of rules.
        missing: The error code and message of a bucket without the configuration.
    """
    method = req.ctx.method
    if method == "GET":
        rules = decode(await read(req, req.account, name))
        if not rules:
            raise S3Error(missing[0], missing[1], 404, {"BucketName": req.bucket})
        return Resp(200, {"Content-Type": "application/xml"}, render(rules))
    if method == "PUT":
        await write(req, name, encode(parse(await read_body(req))))
        return Resp(200, {})
    if method == "DELETE":
        await write(req, name, "")
        return Resp(204, {})
    raise S3Error("MethodNotAllowed", extra={"Method": method, "ResourceType": "BUCKET"})
