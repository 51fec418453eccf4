"""Run the proxy: ``nubis daemon proxy`` (uvicorn + uvloop + httptools)."""

from __future__ import annotations

import importlib
import logging
import os
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
    """Serve the Swift API until stopped."""
    import uvicorn

    conf = config.proxy
    host = conf.bind_ip or config.cluster.bind_ip
    logging.getLogger("nubis.proxy").setLevel(conf.log_level)
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
