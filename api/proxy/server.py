"""Run the proxy: ``nubis daemon proxy`` (Falcon on uvicorn, or nubis' own HTTP server)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

from nubis.api.proxy.auth import TokenVerifier


def _ring_dir(config: Any) -> Path:
    conf = config.proxy
    if conf.ring_dir:
        return Path(conf.ring_dir)
    return Path(config.cluster.state_dir) / "rings"


def _verifiers(config: Any) -> list[TokenVerifier]:
    out: list[TokenVerifier] = []
    for target in config.proxy.token_verifiers:
        module, _, func = target.partition(":")
        out.append(getattr(importlib.import_module(module), func)(config))
    return out


def make_app(config: Any) -> Any:
    """Build the ASGI app for one worker from the whole Config."""
    from nubis.api.proxy.app import build_app

    return build_app(config.proxy, config.tempauth, _ring_dir(config),
                     config.cluster.hash_path_prefix, config.cluster.hash_path_suffix,
                     _verifiers(config))


def app_factory() -> Any:
    """Build the app in a uvicorn worker process (config path from ``$NUBIS_CONFIG``)."""
    from nubis.settings import load_config

    return make_app(load_config(os.environ["NUBIS_CONFIG"]))


def run(config: Any, once: bool = False) -> int:
    """Serve the Swift API until stopped, with the ``[proxy] frontend`` configured."""
    del once
    if config.proxy.frontend == "asgi":
        return run_uvicorn(config)
    return run_native(config)


def run_native(config: Any) -> int:
    """Serve on nubis' own HTTP server (``[proxy] workers`` processes share one socket)."""
    conf = config.proxy
    host = conf.bind_ip or config.cluster.bind_ip
    logging.getLogger("nubis.proxy").setLevel(conf.log_level)
    sock = socket.create_server((host, conf.port), backlog=2048, reuse_port=False)
    sock.setblocking(False)
    if conf.workers <= 1:
        _serve_native(config, sock)
        return 0
    children: list[int] = []
    for _ in range(conf.workers):
        pid = os.fork()
        if pid == 0:  # worker: build its own app and event loop after the fork
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _serve_native(config, sock)
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    sock.close()
    return _supervise(children)


def _serve_native(config: Any, sock: socket.socket) -> None:
    from nubis.api.proxy.app import build_proxy
    from nubis.api.proxy.native import serve
    from nubis.common.httpserver import run_uvloop

    async def main() -> None:
        conf = config.proxy
        proxy = build_proxy(conf, config.tempauth, _ring_dir(config),
                            config.cluster.hash_path_prefix, config.cluster.hash_path_suffix,
                            _verifiers(config))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        task = asyncio.ensure_future(serve(proxy, "", 0, sock))
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await proxy.state.backend.client.close()

    run_uvloop(main())


def _supervise(children: list[int]) -> int:
    """Wait for the workers; SIGTERM/SIGINT are passed on to them."""
    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    for pid in children:
        while True:
            try:
                _, code = os.waitpid(pid, 0)
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
        if os.waitstatus_to_exitcode(code) not in (0, -signal.SIGTERM, -signal.SIGINT):
            status = 1
    return status


def run_uvicorn(config: Any) -> int:
    """Serve the ASGI app (Falcon) with uvicorn."""
    import uvicorn

    conf = config.proxy
    logging.getLogger("nubis.proxy").setLevel(conf.log_level)
    host = conf.bind_ip or config.cluster.bind_ip
    common = {"host": host, "port": conf.port, "loop": "uvloop", "http": "httptools",
              "lifespan": "off", "access_log": False, "server_header": False,
              "log_level": conf.log_level.lower(), "timeout_keep_alive": 75,
              "h11_max_incomplete_event_size": 16384}
    if conf.workers > 1 and "NUBIS_CONFIG" in os.environ:
        uvicorn.run("nubis.api.proxy.server:app_factory", factory=True,
                    workers=conf.workers, **common)
    else:
        uvicorn.run(make_app(config), **common)
    return 0
