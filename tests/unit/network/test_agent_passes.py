"""Unit tests of when a network agent pass rebuilds and when it has nothing to do."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from nubis.daemons.network.agent import NetworkAgent
from nubis.daemons.network.config import NetworkAgentConfig


def _agent(tmp_path: Path, states: list[dict[str, Any]]) -> tuple[NetworkAgent, list[Any]]:
    """An agent reading ``states`` in turn, recording the states it reconciled."""
    cfg = NetworkAgentConfig(network_url="http://127.0.0.1:9/network", agent_token="t",
                             metadata=False)
    agent = NetworkAgent(cfg, tmp_path, teardown_on_close=False)
    built: list[Any] = []

    async def fetch() -> dict[str, Any]:
        return states.pop(0)

    def reconcile(state: dict[str, Any]) -> tuple[dict[str, int], list[Any], list[str]]:
        built.append(state)
        return {"networks": len(state["networks"])}, [], []

    agent.fetch = fetch  # type: ignore[method-assign]
    agent.reconcile = reconcile  # type: ignore[method-assign]
    return agent, built


def _state(name: str) -> dict[str, Any]:
    return {"networks": [{"id": name, "ports": [], "subnets": []}], "routers": []}


def test_only_a_changed_state_is_rebuilt(tmp_path: Path) -> None:
    states = [_state("a"), _state("a"), _state("b"), _state("b")]
    agent, built = _agent(tmp_path, states)
    passes = [asyncio.run(agent.run_once()) for _ in range(4)]
    skipped = {"unchanged": 1, "firewall": 0}
    assert passes == [{"networks": 1}, skipped, {"networks": 1}, skipped]
    assert [s["networks"][0]["id"] for s in built] == ["a", "b"]


def test_resync_interval_and_a_dead_dnsmasq_force_a_rebuild(tmp_path: Path) -> None:
    agent, built = _agent(tmp_path, [_state("a")] * 4)
    asyncio.run(agent.run_once())
    assert agent.applied is not None
    agent.applied = (agent.applied[0], time.monotonic() - agent.cfg.resync_interval)
    assert asyncio.run(agent.run_once()) == {"networks": 1}  # the interval is up
    assert asyncio.run(agent.run_once()) == {"unchanged": 1, "firewall": 0}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(30)
    agent.dhcp.procs["subnet"] = dead  # a dnsmasq that exited
    assert asyncio.run(agent.run_once()) == {"networks": 1}
    assert len(built) == 3


def test_a_failed_rebuild_is_retried_on_the_next_pass(tmp_path: Path) -> None:
    agent, built = _agent(tmp_path, [_state("a")] * 2)
    calls = []

    def fail_once(state: dict[str, Any]) -> tuple[dict[str, int], list[Any], list[str]]:
        calls.append(state)
        if len(calls) == 1:
            raise RuntimeError("netlink said no")
        return {"networks": 1}, [], []

    agent.reconcile = fail_once  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        asyncio.run(agent.run_once())
    assert asyncio.run(agent.run_once()) == {"networks": 1} and len(calls) == 2
    assert built == []
