"""The S3 API on the object proxy (like Swift's s3api): SigV4 auth, buckets, objects, multipart.

S3 requests arrive on the proxy's port and are told apart from Swift ones by
their signature (:func:`nubis.api.shared.awssig.is_s3_request`) or their
virtual-hosted ``Host``; each becomes one or more Swift operations on the
caller's project account (``AUTH_<project_id>``), so objects written through
S3 are Swift objects and the other way round.
"""
