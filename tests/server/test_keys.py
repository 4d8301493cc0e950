"""API keys: hashed in the config, plain or hashed in MEMSCOPE_API_KEYS, refused with a clear message when malformed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from memscope.cli import app
from memscope.config import load_settings
from memscope.errors import ConfigError
from memscope.server.keys import KeyRing, Principal, hash_key
from memscope.server.scoped import ScopedMemory

pytestmark = pytest.mark.unit


def test_config_keys_are_hashes_bound_to_a_tenant_or_admin():
    settings = load_settings({"server": {"keys": [{"sha256": hash_key("k1-0123456789"), "tenant": "acme"},
                                                  {"sha256": "SHA256:" + hash_key("k2-0123456789").upper(),
                                                   "admin": True}]}})  # fmt: skip
    ring = KeyRing.from_settings(settings.server, environ={})
    assert ring.lookup("k1-0123456789") == Principal("acme")
    assert ring.lookup("k2-0123456789") == Principal(None)
    assert ring.lookup("k1-0123456789 ") is None and ring.lookup("") is None and ring.lookup(None) is None


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ({"sha256": "plain-text-key", "tenant": "acme"}, "64 hex digits"),
        ({"sha256": hash_key("x"), "tenant": "Acme Corp"}, "tenant name"),
        ({"sha256": hash_key("x"), "tenant": "acme", "admin": True}, "either"),
        ({"sha256": hash_key("x")}, "either"),
    ],
)
def test_bad_key_entries_say_what_to_fix(key, needle):
    with pytest.raises(ConfigError) as err:
        load_settings({"server": {"keys": [key]}})
    assert needle in str(err.value) and "plain-text-key" not in str(err.value)


def test_environment_keys_plain_or_hashed():
    env = {"MEMSCOPE_API_KEYS": f"acme=plain-0123456789, admin=sha256:{hash_key('adm-0123456789')}"}
    ring = KeyRing.from_settings(load_settings({}).server, environ=env)
    assert ring.lookup("plain-0123456789") == Principal("acme")
    assert ring.lookup("adm-0123456789") == Principal(None)
    with pytest.raises(ConfigError) as err:
        KeyRing.from_settings(load_settings({}).server, environ={"MEMSCOPE_API_KEYS": "Bad Tenant=secret-0123456789"})
    assert "TENANT=KEY" in str(err.value) and "secret-0123456789" not in str(err.value)


def test_tenant_ids_are_namespaced_and_the_prefix_never_comes_back():
    view = ScopedMemory(memory=None, principal=Principal("acme"))  # type: ignore[arg-type]
    assert view.inside(" tom") == "acme:tom" and view.outside("acme:tom") == "tom"
    assert view.owns("acme:x") and not view.owns("globex:x")
    with pytest.raises(ValueError, match="limit is 251"):
        view.inside("x" * 252)
    admin = ScopedMemory(memory=None, principal=Principal(None))  # type: ignore[arg-type]
    assert admin.inside("acme:tom") == "acme:tom" and admin.owns("anything")


def test_serve_refuses_to_start_without_keys_or_with_no_auth_off_loopback(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"store: {{path: {tmp_path / 'm.db'}}}\nllm: {{backend: none}}\n")
    runner = CliRunner()
    no_keys = runner.invoke(app, ["serve", "--config", str(config)], env={"MEMSCOPE_API_KEYS": ""})
    assert no_keys.exit_code == 2 and "memscope keygen" in no_keys.output
    open_to_all = runner.invoke(app, ["serve", "--no-auth", "--host", "0.0.0.0", "--config", str(config)])
    assert open_to_all.exit_code == 2 and "loopback" in open_to_all.output


def test_keygen_prints_the_key_once_and_only_its_hash_for_the_config():
    result = CliRunner().invoke(app, ["keygen", "--tenant", "acme"])
    assert result.exit_code == 0
    key = result.output.split("give it to the client): ")[1].split()[0]
    assert f"{{sha256: {hash_key(key)}, tenant: acme}}" in result.output
    assert CliRunner().invoke(app, ["keygen"]).exit_code == 2
