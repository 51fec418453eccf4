"""Fixtures for compute-host probe tests: libvirtd, the test image, a QEMU-reachable dir.

The test image is built once and kept in ``var/cache/test-image`` of the checkout
(the same place ``nubis up --state-dir var`` keeps it), or in
``$NUBIS_TEST_IMAGE_CACHE``; later runs reuse it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from nubis.daemons.compute.driver import DriverConfig, LibvirtDriver
from nubis.daemons.compute.libvirthost import HostStatus, ensure_libvirtd

from nubis.testimage import TestImageSet, build_test_image, default_cache_dir

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def test_image() -> TestImageSet:
    env = os.environ.get("NUBIS_TEST_IMAGE_CACHE")
    cache = Path(env) if env else default_cache_dir(REPO / "var")
    return build_test_image(cache)


@pytest.fixture(scope="session")
def libvirt_host() -> HostStatus:
    return ensure_libvirtd()


@pytest.fixture
def compute_dir() -> Iterator[Path]:
    """A state dir QEMU (user libvirt-qemu) can reach: pytest's tmp_path is mode 0700."""
    path = Path(tempfile.mkdtemp(prefix="nubis-compute-", dir="/var/tmp"))
    os.chmod(path, 0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def driver(libvirt_host: HostStatus, compute_dir: Path, test_image: TestImageSet
           ) -> LibvirtDriver:
    """A TCG driver whose image cache holds the test image set."""
    drv = LibvirtDriver(DriverConfig(state_dir=compute_dir / "compute", domain_type="qemu"))
    drv.setup()
    for f in test_image.files():
        drv.images.add_file(f.path, f.sha512)
    return drv
