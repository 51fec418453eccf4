"""The ``[image]`` section: the Glance v2 image service under ``nubis api``."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
from dataclasses import dataclass, field

from nubis.common.cluster import ClusterConfig
from nubis.common.config import check, positive

#: Smallest segment of a large image (the proxy's SLO accepts smaller; tiny
#: segments would only multiply requests).
MIN_SEGMENT_SIZE = 1024 * 1024
#: Import methods nubis can offer (``import_methods`` picks among them).
IMPORT_METHODS = ("glance-direct", "web-download")
#: Renewal periods an import's lease outlives (its abandonment bound is at least
#: this many ``import_lease_interval``, and never less than ``import_timeout``).
LEASE_RENEWALS = 6


def _segment_ok(value: int) -> str | None:
    return None if value >= MIN_SEGMENT_SIZE else f"must be >= {MIN_SEGMENT_SIZE}"


def _methods_ok(value: tuple[str, ...]) -> str | None:
    unknown = sorted(set(value) - set(IMPORT_METHODS))
    return f"unknown import method {unknown[0]!r}" if unknown else None


def _networks_ok(value: tuple[str, ...]) -> str | None:
    for item in value:
        try:
            ipaddress.ip_network(item)
        except ValueError:
            return f"{item!r} is not a network"
    return None


@dataclass(frozen=True)
class ImageConfig:
    """Where image bytes go and how large they may be."""

    #: Largest image accepted, in bytes (Glance's ``image_size_cap``, default 1 TiB).
    size_cap: int = field(default=1 << 40, metadata=check(positive))
    #: Images larger than this are stored as SLO segments of this size (capped by
    #: the object store's ``max_file_size`` from its ``/info``).
    segment_size: int = field(default=1 << 30, metadata=check(_segment_ok))
    #: Object-store container holding image objects (in the service account).
    container: str = "glance"
    #: Service user the image service authenticates as (created by the identity
    #: bootstrap with role ``member`` on ``service_project``).
    service_user: str = "glance"
    #: Project whose object-store account (``AUTH_<project id>``) holds the images.
    service_project: str = "service"
    #: Password of ``service_user``; empty means one derived from the cluster secrets.
    service_password: str = ""
    #: Object-store URL of the service account; empty means the ``object-store``
    #: endpoint (interface ``internal``) of the service user's token catalog.
    swift_url: str = ""
    #: Seconds to wait for the object store to accept or produce a piece of data.
    swift_timeout: float = field(default=60.0, metadata=check(positive))
    #: Most images ``GET /v2/images`` returns in one page (Glance's ``api_limit_max``).
    api_limit_max: int = field(default=1000, metadata=check(positive))
    #: Page size when the client gives no ``limit`` (Glance's ``limit_param_default``).
    limit_param_default: int = field(default=25, metadata=check(positive))
    #: Extra properties per image (Glance's ``image_property_quota``).
    property_quota: int = field(default=128, metadata=check(positive))
    #: Tags per image (Glance's ``image_tag_quota``).
    tag_quota: int = field(default=128, metadata=check(positive))
    #: Members per image (Glance's ``image_member_quota``).
    member_quota: int = field(default=128, metadata=check(positive))

    #: Import methods offered (Glance's ``enabled_import_methods``).
    import_methods: tuple[str, ...] = field(default=("glance-direct", "web-download"),
                                            metadata=check(_methods_ok))
    #: ``web-download`` URIs: allowed schemes and ports, and host names (Glance's
    #: ``[import_filtering_opts]``; an empty ``import_allowed_hosts`` allows any).
    import_allowed_schemes: tuple[str, ...] = ("http", "https")
    import_allowed_ports: tuple[int, ...] = (80, 443)
    import_allowed_hosts: tuple[str, ...] = ()
    import_disallowed_hosts: tuple[str, ...] = ()
    #: Networks a ``web-download`` host may not be or resolve to (every address
    #: is checked, and the download connects to the address checked). nubis's own
    #: default: loopback, link-local (cloud metadata), unspecified and multicast.
    import_blocked_networks: tuple[str, ...] = field(default=(
        "127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8", "::/128",
        "224.0.0.0/4", "ff00::/8", "::ffff:0:0/96"), metadata=check(_networks_ok))
    #: Seconds a ``web-download`` may wait for a connection or a piece of data.
    import_timeout: float = field(default=60.0, metadata=check(positive))
    #: Seconds between renewals of the lease of a running import (its task's
    #: ``updated_at``), upload or stage (its ``image_upload`` row's); one whose
    #: lease is older than :attr:`import_lease_timeout` is considered abandoned
    #: (its process stopped) and undone.
    import_lease_interval: float = field(default=10.0, metadata=check(positive))
    #: Seconds between two sweeps for abandoned imports, uploads and stages (each
    #: api process sweeps).
    import_recovery_interval: float = field(default=60.0, metadata=check(positive))

    @property
    def import_lease_timeout(self) -> float:
        """Return the age (seconds) after which a lease counts as abandoned.

        :data:`LEASE_RENEWALS` renewal periods, and at least ``import_timeout``.
        """
        return max(LEASE_RENEWALS * self.import_lease_interval, self.import_timeout)

    def resolved_service_password(self, hash_prefix: str, hash_suffix: str) -> str:
        """Return the service user's password (derived from the cluster secrets if unset).

        The identity bootstrap and the image service compute the same value, so
        no password has to be written anywhere but the (0600) cluster config.
        """
        if self.service_password:
            return self.service_password
        key = f"{hash_prefix}\0{hash_suffix}".encode()
        msg = f"nubis service password: {self.service_user}".encode()
        return hmac.new(key, msg, hashlib.sha256).hexdigest()

    def for_cluster(self, cluster: ClusterConfig) -> ImageConfig:
        """Return this section with the service password resolved for ``cluster``."""
        return dataclasses.replace(self, service_password=self.resolved_service_password(
            cluster.hash_path_prefix, cluster.hash_path_suffix))
