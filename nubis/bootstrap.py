"""Post-start work of ``nubis up``: bootstrap identity with this cloud's catalog.

The catalog names the services this deployment runs and where they listen,
which only this layer knows (the registry and the whole Config); the identity
service gets them as plain entries.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nubis.common.net import http_base
from nubis.settings import Config

if TYPE_CHECKING:
    from nubis.api.identity.bootstrap import CatalogEntry, ServiceUser
    from nubis.api.identity.store import Row


def identity_post_start(config: Config, state_dir: Path) -> None:
    """Bootstrap identity and write clouds.yaml/openrc (the ``nubis up`` hook)."""
    from nubis.registry import API_MOUNTS, DAEMONS

    state = Path(state_dir)
    bootstrap_identity(config, state, [m.prefix for m in API_MOUNTS], "proxy" in DAEMONS,
                       has_placement="scheduler" in DAEMONS)
    public = config.api.resolved_public_url(config.cluster.bind_ip)
    print(f"\nIdentity (Keystone v3): {public}/identity/v3")
    print(f"  wrote {state / 'clouds.yaml'} (clouds nubis-admin, nubis-demo) and "
          f"{state / 'openrc'}")
    print(f"  OS_CLIENT_CONFIG_FILE={state / 'clouds.yaml'} openstack --os-cloud nubis-admin "
          "token issue")


def bootstrap_identity(config: Config, state_dir: Path, prefixes: list[str], has_proxy: bool,
                       *, has_placement: bool = False) -> Row:
    """Create the bootstrap entities for the mounted APIs ``prefixes``; return the admin project."""
    from nubis.api.identity.bootstrap import bootstrap

    state_dir.mkdir(parents=True, exist_ok=True)
    public = config.api.resolved_public_url(config.cluster.bind_ip)
    return bootstrap(config.identity, config.api.resolved_database_url(state_dir), public,
                     state_dir, catalog(config, prefixes, has_proxy, has_placement),
                     service_users(config, prefixes))


def service_users(config: Config, prefixes: list[str]) -> list[ServiceUser]:
    """Return the service accounts of the mounted APIs that keep data as a user.

    The image service stores image bytes in the object-store account of
    ``[image] service_project`` as ``[image] service_user`` (devstack's ``glance``).
    """
    from nubis.api.identity.bootstrap import ServiceUser

    out = []
    if "/image" in prefixes:
        image = config.image.for_cluster(config.cluster)
        out.append(ServiceUser(image.service_user, image.service_project,
                               image.service_password))
    return out


def test_image_post_start(config: Config, state_dir: Path) -> None:
    """Build (once, cached) and upload the test image set (``nubis up`` hook).

    The set is cached in ``<state>/cache/test-image`` (or ``$NUBIS_TEST_IMAGE_CACHE``);
    the three images are uploaded as public images of the admin project, and kept
    on later runs when unchanged. A failure is reported, not fatal: the cloud is up.
    """
    import os
    import sys

    from nubis.imageupload import ImageUploadError, upload_test_images
    from nubis.testimage import TestImageError, build_test_image, default_cache_dir

    env = os.environ.get("NUBIS_TEST_IMAGE_CACHE")
    cache = Path(env) if env else default_cache_dir(Path(state_dir))
    try:
        image_set = build_test_image(cache)
        ids = upload_test_images(Path(state_dir), image_set.kernel.path,
                                 image_set.ramdisk.path, image_set.disk.path,
                                 cmdline=image_set.cmdline)
    except (TestImageError, ImageUploadError, OSError) as exc:
        print(f"nubis up: the test image was not uploaded: {exc} (run `nubis up` again, or "
              "pass --no-test-image)", file=sys.stderr)
        return
    print(f"\nTest image (kernel {image_set.kernel_release}): "
          + ", ".join(f"{name} {image_id}" for name, image_id in ids.items()))


def catalog(config: Config, prefixes: list[str], has_proxy: bool,
            has_placement: bool) -> list[CatalogEntry]:
    """Return the catalog entries of the mounted APIs, the proxy and placement."""
    from nubis.api.identity.bootstrap import CatalogEntry
    from nubis.registry import API_MOUNTS

    public = config.api.resolved_public_url(config.cluster.bind_ip)
    known = {m.prefix: m.catalog for m in API_MOUNTS}
    out = [CatalogEntry(known[p][0], known[p][1], f"{public}{known[p][2]}")
           for p in prefixes if p in known]
    if "/volume" in prefixes:
        # Older clients look block storage up by its former service type.
        out.append(CatalogEntry("volumev3", "cinderv3-legacy", f"{public}/volume/v3"))
    if has_proxy:
        out.append(CatalogEntry("object-store", "swift", object_store_url(config)))
    if has_placement:
        out.append(CatalogEntry("placement", "placement", placement_url(config)))
    return out


def object_store_url(config: Config) -> str:
    """Return the object-store endpoint template (from ``[identity]`` or the proxy's port)."""
    if config.identity.object_store_url:
        return config.identity.object_store_url
    host = config.proxy.bind_ip or config.cluster.bind_ip
    return f"{http_base(host, config.proxy.port)}/v1/AUTH_%(project_id)s"


def placement_url(config: Config) -> str:
    """Return the placement endpoint (served by the scheduler process)."""
    host = config.scheduler.bind_ip or config.cluster.bind_ip
    return f"{http_base(host, config.scheduler.port)}/placement"
