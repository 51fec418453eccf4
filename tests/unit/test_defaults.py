"""``nubis up`` on an older state dir: the config gains the default keys it lacks."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from nubis.common.errors import ConfigError

from nubis import defaults
from nubis.settings import load_config


def _read(path: Path) -> dict[str, dict[str, object]]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def test_missing_defaults_lists_only_absent_keys() -> None:
    doc = {"proxy": {"port": 9000}, "cluster": "not a table"}
    wanted = {"proxy": {"port": 8080, "workers": 2},
              "cluster": {"bind_ip": "127.0.0.1", "hash_path_prefix": "new"},
              "tempauth": {"token_life": 86400, "token_secret": "s", "users": {}}}
    # Never a new hash secret, token secret or user table for a running cloud.
    assert defaults.missing_defaults(doc, wanted) == {
        "proxy": {"workers": 2}, "cluster": {"bind_ip": "127.0.0.1"},
        "tempauth": {"token_life": 86400}}


def test_old_config_gains_new_keys_and_keeps_its_values(tmp_path: Path) -> None:
    path = tmp_path / "nubis.toml"
    assert defaults.write_default_config(path, tmp_path, defaults.Ports(proxy=18080))
    old = _read(path)
    # What an older `nubis up` wrote: no S3 credential lookup, no token verifiers.
    del old["proxy"]["s3_credentials"]
    del old["proxy"]["token_verifiers"]
    old["proxy"]["workers"] = 5
    path.write_text(defaults.to_toml(old))  # type: ignore[arg-type]
    added = defaults.add_missing_defaults(path, tmp_path)
    assert sorted(added) == ["proxy.s3_credentials", "proxy.token_verifiers"]
    new = _read(path)
    assert new["proxy"]["s3_credentials"] == "nubis.api.identity.ec2:proxy_lookup"
    assert new["proxy"]["token_verifiers"] == ["nubis.api.proxy.keystoneauth:proxy_verifier"]
    # Everything already there is kept: the secrets, the port, the edited value.
    assert new["cluster"] == old["cluster"] and new["tempauth"] == old["tempauth"]
    assert (new["proxy"]["port"], new["proxy"]["workers"]) == (18080, 5)
    assert (path.stat().st_mode & 0o777) == 0o600
    config = load_config(path)
    assert config.proxy.s3_credentials == "nubis.api.identity.ec2:proxy_lookup"
    # A second pass has nothing to add and leaves the file alone.
    before = path.read_bytes()
    assert defaults.add_missing_defaults(path, tmp_path) == []
    assert path.read_bytes() == before


def test_hash_secrets_stay_as_they_were_and_a_broken_config_is_untouched(
        tmp_path: Path) -> None:
    path = tmp_path / "nubis.toml"
    path.write_text("[proxy]\nport = 18081\n")  # a hand-written config: built-in secrets
    added = defaults.add_missing_defaults(path, tmp_path)
    assert "proxy.workers" in added and "cluster.state_dir" in added
    doc = _read(path)
    assert "hash_path_prefix" not in doc["cluster"] and "users" not in doc["tempauth"]
    assert load_config(path).cluster.hash_path_suffix == "nubis"  # the built-in one
    path.write_text("[proxy]\nport = 0\n")
    with pytest.raises(ConfigError):
        defaults.add_missing_defaults(path, tmp_path)
    assert path.read_text() == "[proxy]\nport = 0\n"
