"""A session-wide all-in-one cloud for the proxy's functional tests.

Every test runs against both proxy front ends: nubis' own HTTP server (the
default, ``[proxy] frontend = "native"``) and the Falcon ASGI app on uvicorn.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.functional.proxy.cloud import Cloud, start_cloud


@pytest.fixture(scope="session", params=["asgi", "native"])
def cloud(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    c = start_cloud(tmp_path_factory.mktemp("nubis-cloud"), frontend=str(request.param))
    try:
        yield c
    finally:
        c.down()
