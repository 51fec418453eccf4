"""The ``web-download`` URI filters (Glance's ``[import_filtering_opts]`` plus blocked networks)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from nubis.api.image.config import ImageConfig
from nubis.api.image.webdownload import UriFilter, UriRefused

DEFAULT = UriFilter.of(ImageConfig())


@pytest.mark.parametrize("uri", [
    "http://images.example.com/cirros.img", "https://images.example.com:443/a?b=c",
    "HTTP://Images.Example.COM/x", "http://10.0.0.5/private-mirror.qcow2"])
def test_default_filter_passes(uri: str) -> None:
    target = DEFAULT.check(uri)
    assert target.port in (80, 443) and target.path.startswith("/")


@pytest.mark.parametrize("uri", [
    "", "images.example.com/x", "ftp://images.example.com/x", "file:///etc/passwd",
    "http://images.example.com:8080/x", "http://127.0.0.1/x", "http://127.1.2.3/x",
    "http://[::1]/x", "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/x",
    "http://[::ffff:127.0.0.1]/x", "http://[fe80::1]/x", "http://224.0.0.1/x",
    "http://user:pw@images.example.com/x", "http://images.example.com/a b",
    "http://images.example.com/a\r\nHost: evil", "http://images.example.com:99999/x",
    "http://imáges.example.com/x", "http:///nohost"])
def test_default_filter_refuses(uri: str) -> None:
    with pytest.raises(UriRefused):
        DEFAULT.check(uri)


def test_host_lists_and_ports_come_from_the_config() -> None:
    cfg = dataclasses.replace(ImageConfig(), import_allowed_hosts=("mirror.example.com",),
                              import_allowed_ports=(8080,), import_blocked_networks=())
    only = UriFilter.of(cfg)
    assert only.check("http://MIRROR.example.com:8080/x").host == "mirror.example.com"
    for uri in ("http://other.example.com:8080/x", "http://mirror.example.com/x"):
        with pytest.raises(UriRefused):
            only.check(uri)
    denied = UriFilter.of(dataclasses.replace(ImageConfig(),
                                              import_disallowed_hosts=("bad.example.com",)))
    with pytest.raises(UriRefused):
        denied.check("https://bad.example.com/x")


def test_a_name_resolving_into_a_blocked_network_is_refused() -> None:
    """``localhost`` (from /etc/hosts, no network traffic) resolves to loopback."""
    target = DEFAULT.check("http://localhost/x")
    with pytest.raises(UriRefused):
        asyncio.run(DEFAULT.resolve(target))
    open_filter = UriFilter.of(dataclasses.replace(ImageConfig(), import_blocked_networks=()))
    assert asyncio.run(open_filter.resolve(target)) in ("127.0.0.1", "::1")
