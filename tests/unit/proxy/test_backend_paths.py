"""Backend request paths: percent-encoding as Swift does it."""

from __future__ import annotations

import urllib.parse

import pytest
from nubis.api.proxy.backend import quote_path


@pytest.mark.parametrize("parts", [
    ("sda1", "123", "AUTH_test", "bench", "r0-obj-000123"),
    ("d", "1", "AUTH_t", "c", "ünï cøde/x y%"),
    ("a", "b", "", "~._-/", "q?x=1&y#z"),
    ("d", "0", "AUTH_t", "c", "tab\there\nnew;line:+@!$'()*,"),
])
def test_quote_path_matches_urllib(parts: tuple[str, ...]) -> None:
    want = "/" + "/".join(urllib.parse.quote(p, safe="/") for p in parts)
    assert quote_path(*parts) == want
