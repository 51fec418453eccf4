from __future__ import annotations

from pathlib import Path

import pytest
from nubis.common.errors import ConfigError
from nubis.daemons.storage.config import StorageConfig, node_from_env, node_settings

from nubis.registry import DAEMONS
from nubis.settings import load_config


def test_single_node_defaults(tmp_path: Path) -> None:
    n = node_settings(StorageConfig(), tmp_path, 0)
    assert (n.object_port, n.container_port, n.account_port) == (6200, 6201, 6202)
    assert n.devices == tmp_path / "devices" and n.bind_ip == "127.0.0.1"
    with pytest.raises(ValueError):
        node_settings(StorageConfig(), tmp_path, 1)


def test_saio_style_nodes(tmp_path: Path) -> None:
    cfg = StorageConfig(node_count=4, devices=str(tmp_path / "srv"))
    n2 = node_settings(cfg, "ignored", 2)
    assert (n2.object_port, n2.container_port, n2.account_port) == (6220, 6221, 6222)
    assert n2.devices == tmp_path / "srv" / "node2"


def test_node_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUBIS_STORAGE_NODE", raising=False)
    assert node_from_env() == 0
    monkeypatch.setenv("NUBIS_STORAGE_NODE", "3")
    assert node_from_env() == 3
    monkeypatch.setenv("NUBIS_STORAGE_NODE", "x")
    with pytest.raises(ValueError):
        node_from_env()


def test_config_file_section(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[storage]\nobject_port = 7000\ninline_threshold = 0\nfsync = false\n")
    cfg = load_config(path).storage
    assert (cfg.object_port, cfg.inline_threshold, cfg.fsync) == (7000, 0, False)
    path.write_text("[storage]\nobject_port = 70000\n")
    with pytest.raises(ConfigError, match=r"\[storage\] object_port"):
        load_config(path)
    path.write_text("[storage]\nnode_count = 0\n")
    with pytest.raises(ConfigError, match="node_count"):
        load_config(path)


def test_daemons_registered() -> None:
    for name in ("object-server", "container-server", "account-server"):
        spec = DAEMONS[name]
        assert spec.kind == "server" and spec.target.endswith(":run")
