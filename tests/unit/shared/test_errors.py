"""Keystone JSON error mapping (in-process Falcon app, no network)."""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import falcon.testing
from nubis.api.shared.errors import ConflictError, UnauthorizedError, install_keystone_errors


class Boom:
    async def on_get(self, req: Any, resp: Any) -> None:
        raise RuntimeError("secret internals")

    async def on_post(self, req: Any, resp: Any) -> None:
        raise ConflictError("Duplicate entry found with name x.")

    async def on_delete(self, req: Any, resp: Any) -> None:
        raise UnauthorizedError()


def client() -> falcon.testing.TestClient:
    app = falcon.asgi.App()
    install_keystone_errors(app, 'Keystone uri="http://127.0.0.1:5000/identity"')
    app.add_route("/x", Boom())
    return falcon.testing.TestClient(app)


def test_api_errors_and_unexpected_errors() -> None:
    c = client()
    r = c.simulate_post("/x")
    assert r.status_code == 409
    assert r.json == {"error": {"code": 409, "title": "Conflict",
                                "message": "Duplicate entry found with name x."}}
    r = c.simulate_delete("/x")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Keystone uri=")
    r = c.simulate_get("/x")
    assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text
    assert r.json["error"]["title"] == "Internal Server Error"
    r = c.simulate_get("/nope")
    assert r.status_code == 404 and r.json["error"]["title"] == "Not Found"
    r = c.simulate_put("/x")
    assert r.status_code == 405 and r.json["error"]["code"] == 405
