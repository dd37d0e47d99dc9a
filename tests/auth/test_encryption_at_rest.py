"""Acceptance 6: the registry file holds no kubeconfig token or repository password in clear
text; plain rows of an older registry are encrypted when it opens; a key can be rotated."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, MultiFernet

from capstan.client import CapstanClient
from capstan_server.auth.options import SecurityOptions
from capstan_server.registry import DB_FILE, Registry
from capstan_server.secret_box import SecretKeyError
from capstan_server.threaded import ServerHandle

TOKEN = "kubeconfig-token-7f3a9c"
PASSWORD = "repo-password-b81e4d"
KUBECONFIG = f"apiVersion: v1\nusers:\n- name: u\n  user: {{token: {TOKEN}}}\n"


def _leaks(data_dir: Path) -> list[str]:
    """Secrets found in the registry's files, in clear or base64."""
    blob = b"".join(p.read_bytes() for p in data_dir.glob(DB_FILE + "*"))
    found = []
    for secret in (TOKEN, PASSWORD):
        for form in (secret.encode(), base64.b64encode(secret.encode())):
            if form in blob:
                found.append(secret)
    return found


async def test_secrets_are_encrypted_and_read_back(tmp_path: Path) -> None:
    registry = await Registry.open(tmp_path)
    cluster = await registry.add_cluster("c", KUBECONFIG, "https://c")
    repo = await registry.add_repo("r", "https://r", username="u", password=PASSWORD)
    await registry.update_repo(repo.id, password=PASSWORD + "2")
    await registry.close()
    assert _leaks(tmp_path) == []
    key_file = tmp_path / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    again = await Registry.open(tmp_path)
    assert (await again.get_cluster(cluster.id)).kubeconfig == KUBECONFIG
    assert (await again.get_repo(repo.id)).password == PASSWORD + "2"
    await again.close()


async def test_each_stored_value_is_decrypted_once_and_changes_are_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ListReleases lists the clusters: an unchanged kubeconfig is not decrypted again,
    and a changed one (a new token) is what the next read returns."""
    decrypted: list[bytes] = []
    decrypt = MultiFernet.decrypt

    def counted(self: MultiFernet, token: bytes, ttl: int | None = None) -> bytes:
        decrypted.append(token)
        return decrypt(self, token, ttl)

    monkeypatch.setattr(MultiFernet, "decrypt", counted)
    registry = await Registry.open(tmp_path)
    try:
        cluster = await registry.add_cluster("c", KUBECONFIG, "https://c")
        for _ in range(3):
            rows, _ = await registry.list_clusters()
            assert [r.kubeconfig for r in rows] == [KUBECONFIG]
        assert len(decrypted) == 1

        changed = KUBECONFIG.replace(TOKEN, TOKEN + "-rotated")
        await registry.update_cluster(cluster.id, kubeconfig=changed)
        assert [r.kubeconfig for r in (await registry.list_clusters())[0]] == [changed]
        assert (await registry.get_cluster("c")).kubeconfig == changed
        await registry.update_cluster(cluster.id, kubeconfig=KUBECONFIG)  # back again
        assert (await registry.get_cluster("c")).kubeconfig == KUBECONFIG
        assert len(decrypted) == 3
    finally:
        await registry.close()


async def test_plain_rows_are_migrated_and_keys_rotate(tmp_path: Path) -> None:
    registry = await Registry.open(tmp_path)
    cluster = await registry.add_cluster("c", KUBECONFIG, "https://c")
    repo = await registry.add_repo("r", "https://r", username="u", password=PASSWORD)
    await registry.close()
    # Rows as an older Capstan wrote them: in clear text.
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute("UPDATE clusters SET kubeconfig = ?", (KUBECONFIG,))
        conn.execute("UPDATE repos SET password = ?", (PASSWORD,))
    assert _leaks(tmp_path) == [TOKEN, PASSWORD]
    migrated = await Registry.open(tmp_path)
    assert (await migrated.get_cluster(cluster.id)).kubeconfig == KUBECONFIG
    await migrated.close()
    with sqlite3.connect(tmp_path / DB_FILE) as conn:
        conn.execute("VACUUM")  # freed pages may still hold the old rows
    assert _leaks(tmp_path) == []

    # Rotation: a new key first, the old one below; then the old one can go.
    key_file = tmp_path / "secret.key"
    old = [line for line in key_file.read_text().splitlines() if not line.startswith("#")]
    key_file.write_text(Fernet.generate_key().decode() + "\n" + "\n".join(old) + "\n")
    rotated = await Registry.open(tmp_path)
    await rotated.close()
    key_file.write_text(key_file.read_text().splitlines()[0] + "\n")
    final = await Registry.open(tmp_path)
    assert (await final.get_repo(repo.id)).password == PASSWORD
    await final.close()

    # A key replaced instead of rotated is a clear error, not garbage.
    key_file.write_text(Fernet.generate_key().decode() + "\n")
    with pytest.raises(SecretKeyError, match="does not decrypt"):
        await Registry.open(tmp_path)


def test_the_server_registry_file_has_no_secret_in_clear(
    capstan_server_factory: Callable[..., ServerHandle], tmp_path: Path
) -> None:
    key_file = tmp_path / "elsewhere" / "capstan.key"
    server = capstan_server_factory(data_dir=tmp_path / "data",
                                    security=SecurityOptions(secret_key_file=key_file))
    kubeconfig = f"""\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "https://c.invalid:6443"}}
users:
- name: u
  user: {{token: {TOKEN}}}
contexts:
- name: c
  context: {{cluster: c, user: u}}
current-context: c
"""
    with CapstanClient(server.grpc_target) as client:
        client.create_cluster("c", kubeconfig=kubeconfig)
    server.stop()
    assert key_file.exists()
    assert _leaks(tmp_path / "data") == []
