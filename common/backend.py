"""Header names of the backend storage protocol, shared by the proxy and the storage servers.

Swift's internal protocol between a proxy and the object, container and account
servers (request headers are looked up lower-cased; the title-case names are the
ones sent back in replies). Defined once here so both sides name them alike.
"""

from __future__ import annotations

X_TIMESTAMP = "x-timestamp"
X_BACKEND_TIMESTAMP = "X-Backend-Timestamp"
X_POLICY_INDEX = "x-backend-storage-policy-index"
#: Sent instead of the index with a container PUT that names no policy: the policy a
#: new container gets (an existing one keeps its own), as in Swift.
X_POLICY_DEFAULT = "x-backend-storage-policy-default"
#: ``index:name,...`` of the proxy's storage policies, sent with account listings so the
#: account server can name each container's policy (``storage_policy``), as Swift does.
X_POLICY_NAMES = "x-backend-storage-policy-names"
#: Sent by the proxy (and between storage servers) on requests for names in the reserved
#: namespace (starting with NUL, e.g. the hidden ``\x00versions\x00<c>`` containers of
#: object versioning); without it servers refuse such names and listings hide them.
X_ALLOW_RESERVED = "x-backend-allow-reserved-names"
X_CONTAINER_HOST = "x-container-host"
X_CONTAINER_PARTITION = "x-container-partition"
X_CONTAINER_DEVICE = "x-container-device"
X_ACCOUNT_HOST = "x-account-host"
X_ACCOUNT_PARTITION = "x-account-partition"
X_ACCOUNT_DEVICE = "x-account-device"
X_SIZE = "x-size"
X_CONTENT_TYPE = "x-content-type"
X_ETAG = "x-etag"
X_PUT_TIMESTAMP = "x-put-timestamp"
X_DELETE_TIMESTAMP = "x-delete-timestamp"
X_OBJECT_COUNT = "x-object-count"
X_BYTES_USED = "x-bytes-used"
X_DELETE_AT = "x-delete-at"
#: Sent by a proxy with ``allow_open_expired`` on a client's GET/HEAD/POST that says
#: ``X-Open-Expired: true``: the object server then serves (and updates) an object
#: past its ``X-Delete-At`` that the expirer has not deleted yet, as Swift's.
X_OPEN_EXPIRED = "x-backend-open-expired"
X_TRANS_ID = "x-trans-id"
#: xxh3-64 (16 hex digits) of the whole request body, sent by the nubis proxy
#: with the ``ETag`` it computed; an object server that receives both checks
#: the body against the xxh3 and stores that ETag instead of hashing MD5 itself.
X_BODY_XXH3 = "x-backend-body-xxh3"
#: Sent with ``yes`` on a chunked object PUT: the body's trailer carries the
#: ``ETag`` (MD5) and :data:`X_BODY_XXH3` the nubis proxy computed while streaming
#: it, so the object server checks the xxh3 and stores that ETag instead of hashing
#: MD5 itself (a streamed upload hashed once, not once per replica).
X_SUMS_IN_FOOTER = "x-backend-body-sums-in-footer"
#: Sent with an object PUT: the name of one metadata item (lower case). When the
#: PUT replaced a live object holding it, the 201 answer carries its value in
#: :data:`X_REPLACED` (the S3 layer learns which multipart upload an overwrite
#: orphaned without a HEAD before every PUT).
X_REPORT_REPLACED = "x-backend-report-replaced"
X_REPLACED = "x-backend-replaced"
#: Container-update overrides a proxy sends with an object PUT
#: (``<prefix><key>`` replaces the update's ``X-<Key>``).
X_OVERRIDE_PREFIX = "x-backend-container-update-override-"
#: Erasure coding, phase 1: a fragment-archive PUT sent with ``yes`` is stored
#: non-durable (and sends no container update) until phase 2 commits it.
X_EC_MULTIPHASE = "x-backend-obj-multiphase-commit"
#: Erasure coding, phase 2: a POST with the data timestamp of a stored fragment
#: archive marks it durable, merges the request's sysmeta (object ETag, length)
#: and sends the container update.
X_EC_COMMIT = "x-backend-ec-commit"
#: Sent with ``yes`` on a chunked object PUT: the body's trailer fields carry metadata
#: known only once the whole body was read (``X-Object-Sysmeta-*``, ``Content-Type``;
#: e.g. an S3 checksum sent after the payload), stored with the object as if they had
#: been headers. Swift's proxy sends such footers as a MIME document instead.
X_METADATA_FOOTER = "x-backend-obj-metadata-footer"
#: The length of a body sent chunked only for its footer (checked like Content-Length).
X_OBJ_CONTENT_LENGTH = "x-backend-obj-content-length"
#: Object-server reply header of a fragment archive: ``yes`` when durable.
X_EC_DURABLE = "X-Backend-Ec-Durable"
#: Fragment-archive sysmeta (stored with each archive, as Swift's).
EC_FRAG_INDEX = "x-object-sysmeta-ec-frag-index"
EC_ETAG = "x-object-sysmeta-ec-etag"
EC_CONTENT_LENGTH = "x-object-sysmeta-ec-content-length"
EC_SEGMENT_SIZE = "x-object-sysmeta-ec-segment-size"
#: A symlink's target (``<container>/<object>``), stored as object sysmeta as in Swift.
SYMLINK_TARGET = "x-object-sysmeta-symlink-target"

__all__ = [
    "EC_CONTENT_LENGTH",
    "EC_ETAG",
    "EC_FRAG_INDEX",
    "EC_SEGMENT_SIZE",
    "SYMLINK_TARGET",
    "X_ACCOUNT_DEVICE",
    "X_ACCOUNT_HOST",
    "X_ACCOUNT_PARTITION",
    "X_BACKEND_TIMESTAMP",
    "X_BODY_XXH3",
    "X_BYTES_USED",
    "X_CONTAINER_DEVICE",
    "X_CONTAINER_HOST",
    "X_CONTAINER_PARTITION",
    "X_CONTENT_TYPE",
    "X_DELETE_AT",
    "X_DELETE_TIMESTAMP",
    "X_EC_COMMIT",
    "X_EC_DURABLE",
    "X_EC_MULTIPHASE",
    "X_ETAG",
    "X_METADATA_FOOTER",
    "X_OBJECT_COUNT",
    "X_OBJ_CONTENT_LENGTH",
    "X_OPEN_EXPIRED",
    "X_OVERRIDE_PREFIX",
    "X_POLICY_DEFAULT",
    "X_POLICY_INDEX",
    "X_PUT_TIMESTAMP",
    "X_SIZE",
    "X_SUMS_IN_FOOTER",
    "X_TIMESTAMP",
    "X_TRANS_ID",
]
