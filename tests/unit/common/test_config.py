from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from nubis.common import config as cfg
from nubis.common.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    depth: int = 1


@dataclass(frozen=True)
class Server:
    port: int = field(default=8080, metadata=cfg.check(cfg.port))
    bind_ip: str = "127.0.0.1"
    workers: int = field(default=1, metadata=cfg.check(cfg.positive))
    ratio: float = 1.5
    debug: bool = False
    mode: Literal["fast", "safe"] = "safe"
    names: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    url: str | None = None
    inner: Inner = field(default_factory=Inner)


@dataclass(frozen=True)
class Doc:
    server: Server = field(default_factory=Server)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_defaults_when_empty(tmp_path: Path) -> None:
    doc = cfg.load(Doc, write(tmp_path, ""))
    assert doc.server == Server()


def test_values_parsed_and_typed(tmp_path: Path) -> None:
    doc = cfg.load(Doc, write(tmp_path, """
[server]
port = 9000
ratio = 2
debug = true
mode = "fast"
names = ["a", "b"]
limits = { x = 1 }
url = "sqlite:///x"
[server.inner]
depth = 3
"""))
    s = doc.server
    assert (s.port, s.ratio, s.debug, s.mode) == (9000, 2.0, True, "fast")
    assert isinstance(s.ratio, float)
    assert s.names == ["a", "b"] and s.limits == {"x": 1} and s.url == "sqlite:///x"
    assert s.inner.depth == 3


@pytest.mark.parametrize("text, message", [
    ("[server]\nprot = 1\n", "config.toml: [server] prot: unknown key"),
    ("[server]\nport = 'x'\n", "config.toml: [server] port: must be an integer"),
    ("[server]\nport = 70000\n", "config.toml: [server] port: must be a TCP port"),
    ("[server]\nworkers = 0\n", "config.toml: [server] workers: must be > 0"),
    ("[server]\ndebug = 1\n", "config.toml: [server] debug: must be true or false"),
    ("[server]\nport = true\n", "config.toml: [server] port: must be an integer"),
    ("[server]\nmode = 'turbo'\n", "config.toml: [server] mode: must be one of"),
    ("[server]\nnames = 'a'\n", "config.toml: [server] names: must be a list"),
    ("[server]\nnames = [1]\n", "config.toml: [server] names[0]: must be a string"),
    ("[server.inner]\ndepth = 'deep'\n", "config.toml: [server.inner] depth: must be an integer"),
    ("[serve]\nport = 1\n", "config.toml: [serve]: unknown section"),
    ("server = 3\n", "config.toml: [server]: must be a table"),
    ("[server\n", "config.toml: invalid TOML"),
])
def test_bad_config_gives_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg.load(Doc, write(tmp_path, text))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        cfg.load(Doc, tmp_path / "nope.toml")


def test_required_key(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Req:
        name: str

    with pytest.raises(ConfigError, match=r"\[req\] name: required key missing"):
        cfg.parse_section(Req, {}, "req")


def test_settings_exit_code_and_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nubis.settings import exit_on_config_error, load_config

    bad = write(tmp_path, "[cluster]\nhash_path_suffix = 5\n")
    with pytest.raises(SystemExit) as exc:
        exit_on_config_error(lambda: load_config(bad))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == ("config.toml: [cluster] hash_path_suffix: must be a string (got 5)")
