"""``nubis up`` builds (once) and uploads the bootable test image set.

The set is built from Debian packages into ``var/cache/test-image`` of the checkout
(``$NUBIS_TEST_IMAGE_CACHE``, shared with the compute probes), so only the first
run of the suite downloads anything. The cloud is the probe suite's session one
(shared with the compute and network probes).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.functional.image.conftest import ImageCloud
from tests.probe.compute.cloud import ComputeCloud

pytestmark = [pytest.mark.probe, pytest.mark.timeout(900)]  # a second `nubis up`


@pytest.fixture(scope="module")
def cloud(compute: ComputeCloud) -> ImageCloud:
    """The probe suite's session cloud (``nubis up --test-image``), not one more cloud."""
    c = compute.cloud
    return ImageCloud(c, f"{c.config.api.resolved_public_url(c.config.cluster.bind_ip)}/image")


def test_up_uploads_the_three_test_images(cloud: ImageCloud, tmp_path: Path) -> None:
    listed = cloud.osc("image", "list", "-f", "json", cloud="nubis-admin")
    by_name = {i["Name"]: i for i in listed}
    assert {"nubis-test-kernel", "nubis-test-ramdisk", "nubis-test"} <= set(by_name)
    assert all(by_name[n]["Status"] == "active" for n in ("nubis-test-kernel",
                                                          "nubis-test-ramdisk", "nubis-test"))
    disk = cloud.osc("image", "show", "nubis-test", "-f", "json", cloud="nubis-admin")
    props = disk["properties"]
    assert props["kernel_id"] == by_name["nubis-test-kernel"]["ID"]
    assert props["ramdisk_id"] == by_name["nubis-test-ramdisk"]["ID"]
    assert disk["disk_format"] == "qcow2" and disk["visibility"] == "public"
    out = tmp_path / "x"
    cloud.osc("image", "save", "nubis-test", "--file", str(out))  # demo: it is public
    assert hashlib.md5(out.read_bytes(), usedforsecurity=False).hexdigest() == disk["checksum"]
    kernel = cloud.osc("image", "show", "nubis-test-kernel", "-f", "json")
    assert (kernel["disk_format"], kernel["container_format"]) == ("aki", "aki")
    # nubis up again keeps the same images
    again = cloud.cloud.up(test_image=True)
    assert again.returncode == 0, again.stderr
    relisted = cloud.osc("image", "list", "-f", "json", cloud="nubis-admin")
    assert sorted(i["ID"] for i in relisted) == sorted(i["ID"] for i in listed)
