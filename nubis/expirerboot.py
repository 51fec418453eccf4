"""The object expirer with the S3 API's lifecycle actions in its process.

The expirer (a storage daemon) and the proxy are separate services that never
import each other; this module, above both, hands the expirer a
:class:`nubis.api.proxy.s3.lifecycle_apply.ProxyActions` over a proxy state
built from the ``[proxy]`` section (as Swift's expirer runs its internal
client), so lifecycle rules get S3's semantics: delete markers in versioned
buckets, noncurrent versions, multipart segments and aborted uploads.
"""

from __future__ import annotations

from pathlib import Path

from nubis.api.proxy.config import ProxyConfig, TempAuthConfig
from nubis.common.cluster import ClusterConfig
from nubis.daemons.storage import expirer
from nubis.daemons.storage.config import ExpirerConfig, StorageConfig
from nubis.daemons.storage.lifecycle import Actions


def run(section: ExpirerConfig, storage: StorageConfig, cluster: ClusterConfig,
        ring_dir: Path, proxy: ProxyConfig, tempauth: TempAuthConfig,
        once: bool = False) -> int:
    """Run the object expirer of ``$NUBIS_STORAGE_NODE`` with S3 lifecycle actions."""

    def actions() -> Actions:
        from nubis.api.proxy.app import build_proxy
        from nubis.api.proxy.s3.lifecycle_apply import ProxyActions

        app = build_proxy(proxy, tempauth, ring_dir, cluster.hash_path_prefix,
                          cluster.hash_path_suffix, policies=cluster.policies(),
                          local_sockets=cluster.local_sockets)
        return ProxyActions(app.state)

    return expirer.run(section, storage, cluster, ring_dir, once, actions)
