"""``nubis api``'s prefix router: its ASGI lifespan tells the sub-applications it started."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from nubis.api.shared.host import PrefixRouter


class _App:
    """A sub-application that counts its startups (and never serves here)."""

    def __init__(self) -> None:
        self.started = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("no request is routed in these tests")

    def on_startup(self) -> None:
        self.started += 1


async def _plain_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("no request is routed in these tests")


def _lifespan(router: PrefixRouter) -> list[str]:
    """Run one startup and one shutdown through ``router``; return what it sent."""
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> MutableMapping[str, Any]:
        return inbox.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    asyncio.run(router({"type": "lifespan"}, receive, send))
    return sent


def test_startup_calls_each_sub_app_hook_once() -> None:
    image, other = _App(), _App()
    router = PrefixRouter({"/image": image, "/compute": _plain_app, "/volume": other})
    assert _lifespan(router) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert (image.started, other.started) == (1, 1)


def test_startup_without_hooks_still_completes() -> None:
    assert _lifespan(PrefixRouter({"/compute": _plain_app})) == [
        "lifespan.startup.complete", "lifespan.shutdown.complete"]
