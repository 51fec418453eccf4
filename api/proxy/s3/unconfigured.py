"""Bucket features nubis does not offer, answered as S3 answers a bucket without them.

Tools that read a bucket's whole configuration (Terraform's AWS provider,
``s3cmd info``, security auditors) ask for every sub-resource and expect S3's
"not configured" answer: an error code for some (GetBucketPolicy's
``NoSuchBucketPolicy``), an empty document for others (GetBucketLogging's
``<BucketLoggingStatus/>``). Before this, such a GET fell through to
ListObjects and answered a listing the client parsed as an empty
configuration.

Writing one is ``NotImplemented`` (nubis would not enforce a policy, an
encryption rule or a website it accepted); deleting one is the ``204`` S3
gives when there is nothing to delete. The per-id configurations (analytics,
metrics, inventory, intelligent-tiering) answer ``NoSuchConfiguration`` for an
``id`` and an empty list without one.

Request headers asking for what nubis cannot give are refused up front
(:func:`check_headers`, as Swift's s3api does) rather than silently ignored:
server-side encryption (nothing is encrypted at rest, so accepting
``x-amz-server-side-encryption`` would promise what is not done), storage
classes other than ``STANDARD``, object lock (retention, holds, a bucket
created with it), MFA delete, website redirects and appends at an offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nubis.api.proxy.context import Resp
from nubis.api.proxy.s3 import buckets
from nubis.api.proxy.s3.errors import S3Error
from nubis.api.proxy.s3.request import S3Req
from nubis.api.proxy.s3.xmlio import doc, el

#: Content type of the XML documents answered here.
_XML = {"Content-Type": "application/xml"}


@dataclass(frozen=True)
class Absent:
    """How S3 answers one sub-resource of a bucket that has none configured.

    Attributes:
        error: the error code a GET answers (None: it answers ``document``).
        document: root of the empty document a GET answers (a list's when ``by_id``).
        parts: the elements of that document.
        by_id: one configuration per ``id`` (GET with one: ``NoSuchConfiguration``).
        deletable: S3 has a Delete operation for it (answered ``204``).
    """

    error: str | None = None
    document: str = ""
    parts: tuple[str, ...] = ()
    by_id: bool = False
    deletable: bool = True


_NOT_TRUNCATED = (el("IsTruncated", "false"),)

#: Sub-resource (query key) -> how a bucket without it answers.
ABSENT: dict[str, Absent] = {
    "policy": Absent("NoSuchBucketPolicy"),
    "policyStatus": Absent("NoSuchBucketPolicy", deletable=False),
    "encryption": Absent("ServerSideEncryptionConfigurationNotFoundError"),
    "website": Absent("NoSuchWebsiteConfiguration"),
    "replication": Absent("ReplicationConfigurationNotFoundError"),
    "ownershipControls": Absent("OwnershipControlsNotFoundError"),
    "publicAccessBlock": Absent("NoSuchPublicAccessBlockConfiguration"),
    "object-lock": Absent("ObjectLockConfigurationNotFoundError", deletable=False),
    "logging": Absent(document="BucketLoggingStatus", deletable=False),
    "notification": Absent(document="NotificationConfiguration", deletable=False),
    "accelerate": Absent(document="AccelerateConfiguration", deletable=False),
    "requestPayment": Absent(document="RequestPaymentConfiguration",
                             parts=(el("Payer", "BucketOwner"),), deletable=False),
    "analytics": Absent(document="ListBucketAnalyticsConfigurationResult",
                        parts=_NOT_TRUNCATED, by_id=True),
    "metrics": Absent(document="ListMetricsConfigurationsResult", parts=_NOT_TRUNCATED,
                      by_id=True),
    "inventory": Absent(document="ListInventoryConfigurationsResult", parts=_NOT_TRUNCATED,
                        by_id=True),
    "intelligent-tiering": Absent(document="ListBucketIntelligentTieringConfigurationsOutput",
                                  parts=_NOT_TRUNCATED, by_id=True),
}


def asked(query: dict[str, str]) -> str | None:
    """Return the unconfigurable sub-resource a bucket request names (None: none)."""
    for name in query:
        if name in ABSENT:
            return name
    return None


async def handle(req: S3Req, name: str) -> Resp:
    """Answer a GET, PUT or DELETE of the bucket's sub-resource ``name``."""
    absent = ABSENT[name]
    method = req.ctx.method
    if method == "PUT":
        raise S3Error("NotImplemented", status=501)
    if method == "DELETE" and not absent.deletable:
        raise S3Error("MethodNotAllowed", extra={"Method": method, "ResourceType": "BUCKET"})
    await buckets.head(req)  # NoSuchBucket first, as S3 answers
    if absent.by_id and req.q.get("id") is not None:
        raise S3Error("NoSuchConfiguration")
    if method == "DELETE":
        return Resp(204, {})
    if absent.error is not None:
        raise S3Error(absent.error, extra={"BucketName": req.bucket})
    return Resp(200, dict(_XML), doc(absent.document, absent.parts))


#: Header -> the NotImplemented message of a request carrying it.
_UNSUPPORTED = {
    "x-amz-mfa": "MFA Delete is not supported.",
    "x-amz-website-redirect-location": "Website redirection is not supported.",
    "x-amz-server-side-encryption-customer-algorithm":
        "Server-side encryption with customer-provided keys is not supported.",
    "x-amz-copy-source-server-side-encryption-customer-algorithm":
        "Server-side encryption with customer-provided keys is not supported.",
    "x-amz-server-side-encryption-customer-key":
        "Server-side encryption with customer-provided keys is not supported.",
    "x-amz-copy-source-server-side-encryption-customer-key":
        "Server-side encryption with customer-provided keys is not supported.",
    "x-amz-server-side-encryption-aws-kms-key-id": "Server-side encryption is not supported.",
    "x-amz-server-side-encryption-context": "Server-side encryption is not supported.",
    # PutObject appending at an offset (directory buckets): as a PutObject it would
    # replace the object with the appended bytes
    "x-amz-write-offset-bytes": "Appending to an object is not supported.",
    # DeleteObject's conditions of S3 directory buckets: never silently dropped
    "x-amz-if-match-size": "Conditional deletes by size are not supported.",
    "x-amz-if-match-last-modified-time":
        "Conditional deletes by modification time are not supported.",
}
#: Values of ``x-amz-server-side-encryption`` S3 knows (all refused: not offered).
_SSE = ("AES256", "aws:kms", "aws:kms:dsse")
#: Object lock headers of a write (S3's answer for a bucket without object lock).
_LOCK = ("x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date",
         "x-amz-object-lock-legal-hold", "x-amz-object-lock-event-hold",
         "x-amz-object-lock-event-hold-duration-days",
         "x-amz-object-lock-event-hold-duration-years")
#: CreateBucket's request for object lock (``true``: refused, not silently dropped).
_BUCKET_LOCK = "x-amz-bucket-object-lock-enabled"
_CHECKED = frozenset({"x-amz-storage-class", "x-amz-server-side-encryption", *_UNSUPPORTED,
                      *_LOCK, _BUCKET_LOCK})


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse a request asking for a feature nubis does not offer.

    Raises:
        S3Error: ``InvalidStorageClass`` for a class other than ``STANDARD``,
            ``InvalidArgument`` for an unknown encryption, ``InvalidRequest``
            for an object's lock headers, else ``NotImplemented`` (a bucket with
            object lock too).
    """
    if headers.keys().isdisjoint(_CHECKED):  # PERF: one C call (python -m nubis.bench s3)
        return
    storage_class = headers.get("x-amz-storage-class")
    if storage_class is not None and storage_class.strip() != "STANDARD":
        raise S3Error("InvalidStorageClass")
    for name, message in _UNSUPPORTED.items():
        if name in headers:
            raise S3Error("NotImplemented", message, status=501)
    sse = headers.get("x-amz-server-side-encryption")
    if sse is not None:
        if sse.strip() not in _SSE:
            raise S3Error("InvalidArgument", "The encryption method specified is not "
                          "supported", extra={"ArgumentName": "x-amz-server-side-encryption",
                                              "ArgumentValue": sse})
        raise S3Error("NotImplemented", "Server-side encryption is not supported.",
                      status=501)
    if any(h in headers for h in _LOCK):
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    if headers.get(_BUCKET_LOCK, "").strip().lower() == "true":
        raise S3Error("NotImplemented", "Object lock is not supported.", status=501)
