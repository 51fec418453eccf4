"""Configuration sections of the proxy: ``[proxy]`` and ``[tempauth]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from nubis.common.config import check, non_negative, port, positive


def _groups_ok(value: list[str]) -> str | None:
    bad = [g for g in value if not g or "," in g]
    return f"bad group name {bad[0]!r}" if bad else None


def _frontend_ok(value: str) -> str | None:
    return None if value in FRONTENDS else f"must be one of {', '.join(FRONTENDS)}"


def _prefixes_ok(value: list[str]) -> str | None:
    bad = [p for p in value if not p or not p.replace("_", "").isalnum()]
    return f"bad reseller prefix {bad[0]!r}" if bad else None


FRONTENDS = ("asgi", "native")


def _sizes_ok(value: dict[str, float]) -> str | None:
    bad = [k for k, v in value.items() if not k.isdigit() or v <= 0]
    return f"bad container size or rate {bad[0]!r}" if bad else None


@dataclass(frozen=True)
class RateLimitConfig:
    """``[proxy.ratelimit]``: Swift's ratelimit settings."""

    #: Container PUT/DELETE per second per account (0: unlimited).
    account_ratelimit: float = field(default=0.0, metadata=check(non_negative))
    #: ``object count -> requests/s`` for object writes (interpolated between points).
    container_ratelimits: dict[str, float] = field(default_factory=dict,
                                                   metadata=check(_sizes_ok))
    #: ``object count -> requests/s`` for container listings.
    container_listing_ratelimits: dict[str, float] = field(default_factory=dict,
                                                           metadata=check(_sizes_ok))
    #: Longest wait before a request is answered 498 instead.
    max_sleep_time_seconds: float = field(default=60.0, metadata=check(positive))
    #: Log waits longer than this (0: never).
    log_sleep_time_seconds: float = field(default=0.0, metadata=check(non_negative))
    #: Seconds of unused rate a quiet key may bank for a burst.
    rate_buffer_seconds: int = field(default=5, metadata=check(non_negative))
    #: Ticks per second of the schedule.
    clock_accuracy: int = field(default=1000, metadata=check(positive))
    account_whitelist: list[str] = field(default_factory=list)
    account_blacklist: list[str] = field(default_factory=list)
    #: Where the shared schedule lives; empty: next to the rings (``<state>/ratelimit``).
    state_dir: str = ""


@dataclass(frozen=True)
class TempAuthUser:
    """One tempauth user: ``"account:user" = { key = "...", groups = [...] }``."""

    key: str
    #: ``.admin`` owns the account; ``.reseller_admin`` may act on every account.
    groups: list[str] = field(default_factory=list, metadata=check(_groups_ok))


@dataclass(frozen=True)
class TempAuthConfig:
    """``[tempauth]``: Swift's tempauth users and signed-token settings."""

    enabled: bool = True
    #: Account names get this prefix in storage URLs (``AUTH_test``).
    reseller_prefix: str = "AUTH_"
    #: Seconds a token stays valid.
    token_life: int = field(default=86400, metadata=check(positive))
    #: HMAC key for tokens; every proxy worker verifies tokens with it. Empty means
    #: derive one from the cluster hash prefix/suffix.
    token_secret: str = ""
    users: dict[str, TempAuthUser] = field(default_factory=dict)
    #: More reseller prefixes (Swift's ``reseller_prefix = AUTH, SERVICE``): an
    #: ``.admin`` user owns ``<prefix><account>`` under each one as well.
    extra_reseller_prefixes: list[str] = field(default_factory=list,
                                               metadata=check(_prefixes_ok))
    #: ``prefix -> group`` (Swift's ``<prefix>_require_group``): owning an account
    #: under that prefix also needs the group, from ``X-Auth-Token`` or from an
    #: ``X-Service-Token`` (``SERVICE_ = "service"``). Keystone callers (who own
    #: ``<prefix><project_id>`` under every prefix) need it as a role of their
    #: ``X-Service-Token`` (Swift keystoneauth's ``<prefix>_service_roles``).
    require_group: dict[str, str] = field(default_factory=dict)

    @property
    def reseller_prefixes(self) -> tuple[str, ...]:
        """Return every reseller prefix, the primary one first."""
        return (self.reseller_prefix, *self.extra_reseller_prefixes)


@dataclass(frozen=True)
class ProxyConfig:
    """``[proxy]``: the Swift v1 proxy server."""

    enabled: bool = True
    bind_ip: str = ""
    port: int = field(default=8080, metadata=check(port))
    workers: int = field(default=1, metadata=check(positive))
    #: ``"native"`` (the default): the proxy on nubis' own HTTP server (one write per
    #: response, ~27 % less proxy CPU per 4 KiB S3 request: the README's S3 benchmark);
    #: ``"asgi"``: the same proxy as a Falcon ASGI app on uvicorn + uvloop.
    frontend: str = field(default="native", metadata=check(_frontend_ok))
    #: Seconds to connect to a storage node.
    conn_timeout: float = field(default=2.0, metadata=check(positive))
    #: Seconds a storage node may take to answer or to accept/produce a chunk.
    node_timeout: float = field(default=10.0, metadata=check(positive))
    #: Seconds to wait for the next piece of a client's request body.
    client_timeout: float = field(default=60.0, metadata=check(positive))
    #: Seconds account/container info is cached per worker.
    recheck_info: float = field(default=5.0, metadata=check(positive))
    #: Create an account on its first container PUT (Swift's account_autocreate).
    account_autocreate: bool = True
    #: Swift's ``allow_open_expired``: a GET, HEAD or POST of an object that says
    #: ``X-Open-Expired: true`` reaches it past its ``X-Delete-At`` until the expirer
    #: deletes it (a POST with a new ``X-Delete-At`` keeps it); never through a TempURL.
    allow_open_expired: bool = False
    #: Handoff nodes tried beyond the primaries.
    max_handoffs: int = field(default=4, metadata=check(positive))
    max_file_size: int = field(default=5 * 1024 ** 3, metadata=check(positive))
    #: Largest SLO manifest (segments) accepted.
    max_manifest_segments: int = field(default=1000, metadata=check(positive))
    #: Where the rings live; empty means ``<state_dir>/rings``.
    ring_dir: str = ""
    log_level: str = "WARNING"
    #: Extra token verifiers tried after tempauth: ``"module:function"`` called with
    #: the cloud's token settings and the ``[tempauth]`` section, returning an object
    #: with ``async verify(token) -> Identity | None`` (how Keystone tokens join the chain).
    token_verifiers: list[str] = field(default_factory=list)
    #: Where the S3 API finds access keys: ``"module:function"`` called with the
    #: cloud's token settings, returning an object with ``lookup(access)`` (see
    #: :mod:`nubis.api.proxy.s3.auth`). Empty: S3 requests are refused (AccessDenied).
    s3_credentials: str = ""
    #: Virtual-hosted-style S3 domain (``bucket.s3.localhost``).
    s3_domain: str = "s3.localhost"
    #: Swift's domain_remap: hosts ``[<container>.]<account>.<domain>`` address
    #: ``/v1/<account>[/<container>]`` (empty list: off).
    storage_domain: list[str] = field(default_factory=lambda: ["swift.localhost"])
    #: Reseller prefixes a remapped account name may start with (``auth-x`` = ``AUTH_x``).
    remap_reseller_prefixes: list[str] = field(default_factory=lambda: ["AUTH"])
    #: Prefix added to remapped account names without one (empty: such hosts pass through).
    default_reseller_prefix: str = ""
    #: The ``<allow-access-from ...>`` lines ``GET /crossdomain.xml`` serves.
    cross_domain_policy: str = '<allow-access-from domain="*" secure="false" />'
    #: Quote object Etags (RFC 7232) unless an account or container says otherwise
    #: (Swift's etag-quoter ``enable_by_default``).
    etag_quoter_enable_by_default: bool = False
    #: Swift's ratelimit (``[proxy.ratelimit]``; nothing is limited by default).
    ratelimit: RateLimitConfig = field(default_factory=RateLimitConfig)
    #: The region S3 clients sign for and GetBucketLocation names.
    s3_region: str = "us-east-1"
    #: Swift s3api's ``s3_acl``: per-user S3 ACLs stored with each bucket and object and
    #: enforced by the S3 layer (see :mod:`nubis.api.proxy.s3.grants`). Off: canned
    #: ACLs only, mapped onto the containers' Swift ACLs.
    s3_acl: bool = False
    #: The checksum S3 adds to a PutObject that carries none (S3's default since 2025,
    #: shown with ``x-amz-checksum-mode: ENABLED``); ``"none"``: add none.
    s3_default_checksum: Literal["crc64nvme", "none"] = "crc64nvme"
