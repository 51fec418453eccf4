"""Host helpers that need no libvirtd: path reachability for QEMU, the cached choice."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from nubis.daemons.compute import libvirthost
from nubis.daemons.compute.errors import HostSetupError


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory anyone can search (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(dir="/var/tmp"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path)


def test_blocking_ancestor(open_dir: Path, tmp_path: Path) -> None:
    top = open_dir / "top"
    inner = top / "inner"
    inner.mkdir(parents=True)
    os.chmod(top, 0o700)
    if os.geteuid() == 0:  # "nobody" is not the owner of, nor in the group of, top
        assert libvirthost.blocking_ancestor(inner / "disk", "nobody") == top
        with pytest.raises(HostSetupError, match="0700"):
            libvirthost.check_reachable(inner / "disk", "nobody")
    os.chmod(top, 0o711)
    assert libvirthost.blocking_ancestor(inner / "disk", "nobody") is None
    libvirthost.check_reachable(inner / "disk", "nobody")
    assert libvirthost.blocking_ancestor(tmp_path / "x", "no-such-user-xyz") is None


def test_cached_choice_is_used(tmp_path: Path) -> None:
    (tmp_path / libvirthost.PROBE_CACHE).write_text(json.dumps(
        {"domain_type": "qemu", "reason": "probed earlier", "probe_seconds": 1.5}))
    # no connection is needed when the answer is cached
    got = libvirthost.choose_domain_type(None, tmp_path, Path("/k"), Path("/i"),
                                         cmdline="", expect="")
    assert got == libvirthost.DomainTypeChoice("qemu", "probed earlier", 1.5)


@pytest.mark.parametrize("doc", ["{", '{"domain_type": "xen", "reason": "", "probe_seconds": 0}',
                                 '{"domain_type": "kvm"}', "[]"])
def test_bad_cache_files_are_ignored(tmp_path: Path, doc: str) -> None:
    (tmp_path / libvirthost.PROBE_CACHE).write_text(doc)
    assert libvirthost._read_choice(tmp_path / libvirthost.PROBE_CACHE) is None
