"""A session-wide all-in-one cloud for the proxy's functional tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.functional.proxy.cloud import Cloud, start_cloud


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("nubis-cloud"))
    try:
        yield c
    finally:
        c.down()
