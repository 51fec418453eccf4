"""S3's error answers: one exception type and the one mapping to ``<Error>`` XML.

Swift-side errors raised by the proxy's controllers (:class:`HTTPError`) and
signature errors (:class:`SigError`) are translated here too, so every S3
answer that is not a success is S3 XML with ``Code``, ``Message``,
``Resource`` and ``RequestId``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Mapping
from xml.sax.saxutils import escape

from nubis.api.proxy.errors import BackendUnavailableError, ClientDisconnectError, HTTPError
from nubis.api.shared.awssig import SigError

#: Characters escaped beyond ``&<>`` in S3 documents: a parser reads a raw carriage
#: return as a line feed (XML's end-of-line handling), so a key holding one would
#: come back changed.
XML_ENTITIES = {"\r": "&#13;"}

log = logging.getLogger("nubis.proxy.s3")

#: S3 error code -> (status, default message).
CODES: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "BadDigest": (400, "The Content-MD5 you specified did not match what we received."),
    "BucketAlreadyExists": (409, "The requested bucket name is not available. The bucket "
                            "namespace is shared by all users of the system. Please select "
                            "a different name and try again."),
    "BucketAlreadyOwnedByYou": (409, "Your previous request to create the named bucket "
                                "succeeded and you already own it."),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty"),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed object size."),
    "EntityTooSmall": (400, "Your proposed upload is smaller than the minimum allowed "
                       "object size."),
    "IncompleteBody": (400, "You did not provide the number of bytes specified by the "
                       "Content-Length HTTP header"),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidDigest": (400, "The Content-MD5 you specified was invalid."),
    "InvalidPart": (400, "One or more of the specified parts could not be found.  The part "
                    "may not have been uploaded, or the specified entity tag may not "
                    "match the part's entity tag."),
    "InvalidPartOrder": (400, "The list of parts was not in ascending order. The parts "
                         "list must be specified in order by part number."),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable"),
    "InvalidTag": (400, "The tag provided was not a valid tag."),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidStorageClass": (400, "The storage class you specified is not valid"),
    "KeyTooLongError": (400, "Your key is too long."),
    "InvalidAccessKeyId": (403, "The AWS Access Key Id you provided does not exist in "
                           "our records."),
    "InvalidPolicyDocument": (400, "The content of the form does not meet the conditions "
                              "specified in the policy document."),
    "MalformedPOSTRequest": (400, "The body of your POST request is not well-formed "
                             "multipart/form-data."),
    "MaxPostPreDataLengthExceededError": (400, "Your POST request fields preceding the "
                                          "upload file were too large."),
    "MalformedXML": (400, "The XML you provided was not well-formed or did not validate "
                     "against our published schema"),
    "MetadataTooLarge": (400, "Your metadata headers exceed the maximum allowed metadata "
                         "size."),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "NoSuchBucket": (404, "The specified bucket does not exist"),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "NoSuchUpload": (404, "The specified upload does not exist. The upload ID may be "
                     "invalid, or the upload may have been aborted or completed."),
    "NoSuchBucketPolicy": (404, "The bucket policy does not exist"),
    "NoSuchConfiguration": (404, "The specified configuration does not exist."),
    "NoSuchPublicAccessBlockConfiguration": (404, "The public access block configuration "
                                             "was not found"),
    "NoSuchWebsiteConfiguration": (404, "The specified bucket does not have a website "
                                   "configuration"),
    "NotImplemented": (501, "The requested resource is not implemented"),
    "OwnershipControlsNotFoundError": (404, "The bucket ownership controls were not found"),
    "ReplicationConfigurationNotFoundError": (404, "The replication configuration was not "
                                              "found"),
    "ServerSideEncryptionConfigurationNotFoundError": (404, "The server side encryption "
                                                       "configuration was not found"),
    "ObjectLockConfigurationNotFoundError": (404, "Object Lock configuration does not "
                                             "exist for this bucket"),
    "UserKeyMustBeSpecified": (400, "The bucket POST must contain the specified field "
                               "name. If it is specified, please check the order of the "
                               "fields."),
    "PreconditionFailed": (412, "At least one of the pre-conditions you specified did not "
                           "hold"),
    "RequestTimeout": (400, "Your socket connection to the server was not read from or "
                       "written to within the timeout period."),
    "ServiceUnavailable": (503, "Please reduce your request rate."),
    "SignatureDoesNotMatch": (403, "The request signature we calculated does not match "
                              "the signature you provided. Check your key and signing "
                              "method."),
    "XAmzContentSHA256Mismatch": (400, "The provided 'x-amz-content-sha256' header does "
                                  "not match what was computed."),
}


#: Errors whose document names no ``<Resource>`` (as S3 and Swift's s3api answer them:
#: the request body or the upload id is what is wrong, not the addressed resource).
NO_RESOURCE = frozenset({"MalformedXML", "NoSuchUpload"})


class S3Error(Exception):
    """An S3 error answer."""

    def __init__(self, code: str, message: str | None = None, status: int | None = None,
                 extra: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None, resource: bool = True) -> None:
        default_status, default_msg = CODES.get(code, (400, code))
        #: Whether the document names the addressed resource.
        self.resource = resource
        self.code = code
        self.message = message or default_msg
        self.status = status or default_status
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        super().__init__(f"{self.status} {code}: {self.message}")


def from_swift(exc: HTTPError, missing: str = "NoSuchKey") -> S3Error:
    """Translate a Swift controller's error; ``missing`` names what a 404 means."""
    status = exc.status
    if status == 404:
        return S3Error(missing)
    if status in (401, 403):
        return S3Error("AccessDenied")
    if status == 412:
        return S3Error("PreconditionFailed", extra={"Condition": "If-Match"})
    if status == 416:
        return S3Error("InvalidRange")
    if status == 413:
        return S3Error("EntityTooLarge")
    if status == 411:
        return S3Error("MissingContentLength")
    if status == 422:
        return S3Error("BadDigest")
    if status == 408:
        return S3Error("RequestTimeout")
    if status == 409:
        return S3Error("BucketNotEmpty")
    if status >= 500:
        return S3Error("ServiceUnavailable" if status == 503 else "InternalError")
    return S3Error("InvalidArgument", exc.body.strip(), 400)


def bad_digest(content_md5: str, hex_digest: bool = True) -> S3Error:
    """Return ``BadDigest`` naming the ``Content-MD5`` sent (hex, or as sent: base64).

    S3 is inconsistent here, and Swift's s3api with it: an upload's answer shows
    the digest in hex, a DeleteObjects' or a configuration's as sent.
    """
    shown = content_md5
    if hex_digest:
        with contextlib.suppress(binascii.Error, ValueError):
            shown = base64.b64decode(content_md5).hex()
    return S3Error("BadDigest", extra={"ExpectedDigest": shown})


def to_s3(exc: BaseException, resource: str) -> S3Error:
    """Return the S3 error for any exception raised while answering ``resource``."""
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, SigError):
        return S3Error(exc.code, exc.message, exc.status, exc.extra, resource=exc.resource)
    if isinstance(exc, HTTPError):
        return from_swift(exc)
    if isinstance(exc, ClientDisconnectError):
        return S3Error("IncompleteBody")
    if isinstance(exc, (BackendUnavailableError, TimeoutError)):
        return S3Error("ServiceUnavailable")
    log.exception("unexpected S3 error on %s", resource)
    return S3Error("InternalError")


def error_body(err: S3Error, resource: str, request_id: str) -> bytes:
    """Return the ``<Error>`` document."""
    parts = [f"<Code>{err.code}</Code>", f"<Message>{escape(err.message)}</Message>"]
    parts += [f"<{k}>{escape(v, XML_ENTITIES)}</{k}>" for k, v in err.extra.items()]
    if err.resource and err.code not in NO_RESOURCE:
        parts.append(f"<Resource>{escape(resource, XML_ENTITIES)}</Resource>")
    parts.append(f"<RequestId>{request_id}</RequestId>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts)
            + "</Error>").encode("utf-8")
