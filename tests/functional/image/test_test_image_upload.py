"""``nubis.imageupload``: the three test images uploaded (and kept) through the image API.

The real kernel/initramfs builder is separate work; here small files stand in for
its output, and the upload itself is the real one ``nubis up`` will run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nubis import imageupload
from tests.functional.image.conftest import ImageCloud

pytestmark = pytest.mark.functional


def test_upload_is_idempotent_and_links_kernel_and_ramdisk(images: ImageCloud,
                                                           tmp_path: Path) -> None:
    kernel, ramdisk, disk = tmp_path / "vmlinuz", tmp_path / "initrd.img", tmp_path / "d.qcow2"
    kernel.write_bytes(os.urandom(300_000))
    ramdisk.write_bytes(os.urandom(200_000))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    ids = imageupload.upload_test_images(images.state, kernel, ramdisk, disk)
    again = imageupload.upload_test_images(images.state, kernel, ramdisk, disk)
    assert again == ids
    token, _ = images.login("nubis-demo")  # public: every project sees them
    test = images.http("GET", f"/v2/images/{ids['nubis-test']}", token).json()
    assert (test["kernel_id"], test["ramdisk_id"]) == (ids["nubis-test-kernel"],
                                                       ids["nubis-test-ramdisk"])
    assert (test["disk_format"], test["virtual_size"]) == ("qcow2", 64 * 1024 * 1024)
    k = images.http("GET", f"/v2/images/{ids['nubis-test-kernel']}", token).json()
    assert (k["disk_format"], k["container_format"], k["visibility"]) == ("aki", "aki",
                                                                          "public")
    got = images.http("GET", f"/v2/images/{ids['nubis-test-ramdisk']}/file", token)
    assert got.content == ramdisk.read_bytes()
    ramdisk.write_bytes(os.urandom(1000))  # a rebuilt ramdisk replaces the old image
    third = imageupload.upload_test_images(images.state, kernel, ramdisk, disk)
    assert third["nubis-test-kernel"] == ids["nubis-test-kernel"]
    assert third["nubis-test-ramdisk"] != ids["nubis-test-ramdisk"]
    assert third["nubis-test"] != ids["nubis-test"]  # it points at the new ramdisk
    listed = images.http("GET", "/v2/images?name=nubis-test-ramdisk", token).json()["images"]
    assert [i["id"] for i in listed] == [third["nubis-test-ramdisk"]]
    admin, _ = images.login("nubis-admin")
    for image_id in third.values():
        images.http("DELETE", f"/v2/images/{image_id}", admin)
