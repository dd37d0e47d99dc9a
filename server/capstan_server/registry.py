"""Capstan's own store: registered clusters and chart repositories, in SQLite under --data-dir.

Helm keeps release state in the clusters; this store holds only what Helm cannot: kubeconfigs
and repository credentials. Both are secrets: they are encrypted (`secret_box.SecretBox`, key
from `--secret-key-file`), the directory is 0700 and the database file 0600 (SQLite gives its
journal the database file's mode). Calls are short and run in a worker
thread (`asyncio.to_thread`) so that the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from capstan_server.charts.oci import OciOptions
from capstan_server.errors import AlreadyExists, InvalidArgument, NotFound
from capstan_server.secret_box import DEFAULT_KEY_FILE, SecretBox

__all__ = ["DB_FILE", "ClusterRow", "Registry", "RepoRow", "RepoType"]

DB_FILE = "registry.sqlite3"
RepoType = Literal["internal", "external"]
REPO_TYPES: tuple[RepoType, ...] = ("external", "internal")
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clusters (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kubeconfig  TEXT NOT NULL,
    server      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS repos (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    url         TEXT NOT NULL,
    type        TEXT NOT NULL CHECK (type IN ('internal', 'external')),
    username    TEXT NOT NULL DEFAULT '',
    password    TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    synced_at   TEXT
);
-- How to reach an OCI repository (`oci://` url); its credentials stay in `repos`.
CREATE TABLE IF NOT EXISTS repo_oci (
    repo_id     TEXT PRIMARY KEY REFERENCES repos (id) ON DELETE CASCADE,
    plain_http  INTEGER NOT NULL DEFAULT 0,
    ca_pem      TEXT NOT NULL DEFAULT '',
    charts      TEXT NOT NULL DEFAULT '[]'
);
"""


@dataclass(frozen=True)
class ClusterRow:
    """A registered cluster. `kubeconfig` is a secret: never put it in a response or a log."""

    id: str
    name: str
    server: str
    created_at: datetime
    kubeconfig: str = field(repr=False)


@dataclass(frozen=True)
class RepoRow:
    """A registered chart repository. `password` is a secret and never leaves the server."""

    id: str
    name: str
    url: str
    type: RepoType
    username: str
    created_at: datetime
    synced_at: datetime | None
    password: str = field(default="", repr=False)

    @property
    def auth(self) -> tuple[str, str] | None:
        """Basic-auth credentials, if the repository has any."""
        return (self.username, self.password) if self.username or self.password else None


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Registry:
    """The SQLite store. Open it with `await Registry.open(data_dir)`; close with `close()`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, box: SecretBox) -> None:
        self.path = path
        self._conn = conn
        self._box = box
        # One connection shared by worker threads; sqlite3 objects are not thread-safe alone.
        self._lock = threading.Lock()

    @classmethod
    async def open(cls, data_dir: Path, *, secret_key_file: Path | None = None) -> Registry:
        """Open (creating if needed) the registry under `data_dir`, fixing file modes; secrets
        are encrypted with the key file (default `<data_dir>/secret.key`, made if missing)."""
        return await asyncio.to_thread(cls._open_sync, data_dir, secret_key_file)

    @classmethod
    def _open_sync(cls, data_dir: Path, secret_key_file: Path | None = None) -> Registry:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        path = data_dir / DB_FILE
        # Create the file ourselves so it is never readable by others, not even for a moment.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(path, 0o600)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.executescript(_SCHEMA)
        try:
            box = SecretBox.from_file(secret_key_file or data_dir / DEFAULT_KEY_FILE)
            _seal_all(conn, box)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, box)

    async def close(self) -> None:
        await asyncio.to_thread(self._run, lambda c: c.close())

    def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        with self._lock:
            return fn(self._conn)

    async def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        return await asyncio.to_thread(self._run, fn)

    async def _update(self, table: str, row_id: str, changes: dict[str, str]) -> None:
        if not changes:
            return
        # Column names come from the fixed keyword arguments above, never from a caller.
        assignments = ", ".join(f"{column} = ?" for column in changes)
        await self._call(
            lambda c: c.execute(
                f"UPDATE {table} SET {assignments} WHERE id = ?", (*changes.values(), row_id)
            )
        )

    async def _find_row(self, table: str, id_or_name: str) -> sqlite3.Row | None:
        """The row of `table` whose id (preferred) or name is `id_or_name`."""

        def select(c: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = c.execute(
                f"SELECT * FROM {table} WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1",
                (id_or_name, id_or_name, id_or_name),
            ).fetchone()
            return row

        return await self._call(select)

    # -- clusters -----------------------------------------------------------------------------

    async def add_cluster(
        self, name: str, kubeconfig: str, server: str, *, cluster_id: str = ""
    ) -> ClusterRow:
        """Register a cluster (with a new UUID unless given); AlreadyExists when the name is
        taken."""
        row = ClusterRow(cluster_id or str(uuid.uuid4()), name, server, _now(), kubeconfig)

        def insert(c: sqlite3.Connection) -> None:
            try:
                c.execute(
                    "INSERT INTO clusters (id, name, kubeconfig, server, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (row.id, row.name, self._box.seal(row.kubeconfig), row.server,
                     row.created_at.isoformat()),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"cluster {name!r} is already registered") from None

        await self._call(insert)
        return row

    async def find_cluster(self, id_or_name: str) -> ClusterRow | None:
        """A cluster by UUID or name, or None."""
        row = await self._find_row("clusters", id_or_name)
        return _cluster(row, self._box) if row else None

    async def get_cluster(self, id_or_name: str) -> ClusterRow:
        """A cluster by UUID or name; NotFound otherwise."""
        if not id_or_name:
            raise InvalidArgument("cluster is required")
        row = await self.find_cluster(id_or_name)
        if row is None:
            raise NotFound(
                f"cluster {id_or_name!r} is not registered",
                details=[{"resource": "cluster", "name": id_or_name}],
            )
        return row

    async def list_clusters(self, limit: int = -1, offset: int = 0) -> tuple[list[ClusterRow], int]:
        """Clusters by name (one page of them) and the total count."""

        def select(c: sqlite3.Connection) -> tuple[list[sqlite3.Row], int]:
            rows = c.execute(
                "SELECT * FROM clusters ORDER BY name LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
            total: int = c.execute("SELECT COUNT(*) FROM clusters").fetchone()[0]
            return rows, total

        rows, total = await self._call(select)
        return [_cluster(r, self._box) for r in rows], total

    async def update_cluster(
        self, cluster_id: str, *, kubeconfig: str | None = None, server: str | None = None
    ) -> ClusterRow:
        """Replace a cluster's kubeconfig and/or server URL (e.g. a dev cluster on a new port)."""
        sealed = self._box.seal(kubeconfig) if kubeconfig is not None else None
        changes = {k: v for k, v in (("kubeconfig", sealed), ("server", server)) if v is not None}
        await self._update("clusters", cluster_id, changes)
        return await self.get_cluster(cluster_id)

    async def delete_cluster(self, cluster_id: str) -> None:
        """Forget a cluster (callers check first that no release still uses it)."""
        await self._call(lambda c: c.execute("DELETE FROM clusters WHERE id = ?", (cluster_id,)))

    # -- repositories ------------------------------------------------------------------------

    async def add_repo(
        self,
        name: str,
        url: str,
        type: RepoType = "external",
        username: str = "",
        password: str = "",
    ) -> RepoRow:
        """Register a repository; AlreadyExists when the name is taken."""
        if type not in REPO_TYPES:
            raise InvalidArgument(f"repository type must be 'internal' or 'external', not {type!r}")
        row = RepoRow(str(uuid.uuid4()), name, url, type, username, _now(), None, password)

        def insert(c: sqlite3.Connection) -> None:
            try:
                c.execute(
                    "INSERT INTO repos (id, name, url, type, username, password, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.id,
                        row.name,
                        row.url,
                        row.type,
                        row.username,
                        self._box.seal(row.password),
                        row.created_at.isoformat(),
                    ),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"repository {name!r} is already registered") from None

        await self._call(insert)
        return row

    async def find_repo(self, id_or_name: str) -> RepoRow | None:
        """A repository by UUID or name, or None."""
        row = await self._find_row("repos", id_or_name)
        return _repo(row, self._box) if row else None

    async def get_repo(self, id_or_name: str) -> RepoRow:
        """A repository by UUID or name; NotFound otherwise."""
        if not id_or_name:
            raise InvalidArgument("repository is required")
        row = await self.find_repo(id_or_name)
        if row is None:
            raise NotFound(
                f"repository {id_or_name!r} is not registered",
                details=[{"resource": "repository", "name": id_or_name}],
            )
        return row

    async def list_repos(
        self, limit: int = -1, offset: int = 0, type: str = ""
    ) -> tuple[list[RepoRow], int]:
        """Repositories by name (one page, optionally of one type) and the total count."""

        def select(c: sqlite3.Connection) -> tuple[list[sqlite3.Row], int]:
            where, args = ("WHERE type = ?", [type]) if type else ("", [])
            rows = c.execute(
                f"SELECT * FROM repos {where} ORDER BY name LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
            total: int = c.execute(f"SELECT COUNT(*) FROM repos {where}", args).fetchone()[0]
            return rows, total

        rows, total = await self._call(select)
        return [_repo(r, self._box) for r in rows], total

    async def update_repo(
        self,
        repo_id: str,
        *,
        url: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> RepoRow:
        """Change a repository's URL and/or credentials (its cached index is then stale)."""
        changes = {
            k: v
            for k, v in (
                ("url", url),
                ("username", username),
                ("password", self._box.seal(password) if password is not None else None),
            )
            if v is not None
        }
        await self._update("repos", repo_id, changes)
        return await self.get_repo(repo_id)

    async def mark_repo_synced(self, repo_id: str, when: datetime | None = None) -> RepoRow:
        """Record a successful index fetch."""
        stamp = (when or _now()).isoformat()
        await self._call(
            lambda c: c.execute("UPDATE repos SET synced_at = ? WHERE id = ?", (stamp, repo_id))
        )
        return await self.get_repo(repo_id)

    async def set_oci_options(self, repo_id: str, options: OciOptions) -> None:
        """Keep how to reach the OCI repository `repo_id` (plain HTTP, CA, charts by name)."""
        await self._call(lambda c: c.execute(
            "INSERT OR REPLACE INTO repo_oci (repo_id, plain_http, ca_pem, charts)"
            " VALUES (?, ?, ?, ?)",
            (repo_id, int(options.plain_http), options.ca_pem, json.dumps(options.charts))))

    async def oci_options(self, repo_id: str) -> OciOptions:
        """How to reach an OCI repository (the defaults when none were stored)."""

        def select(c: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = c.execute(
                "SELECT * FROM repo_oci WHERE repo_id = ?", (repo_id,)).fetchone()
            return row

        row = await self._call(select)
        if row is None:
            return OciOptions()
        return OciOptions(bool(row["plain_http"]), row["ca_pem"], tuple(json.loads(row["charts"])))

    async def delete_repo(self, repo_id: str) -> None:
        """Forget a repository (callers check first that no release still uses it)."""
        await self._call(lambda c: c.execute("DELETE FROM repos WHERE id = ?", (repo_id,)))


def _seal_all(conn: sqlite3.Connection, box: SecretBox) -> None:
    """Encrypt plain rows (from before encryption) and rows under an older key, in place."""
    for table, column in (("clusters", "kubeconfig"), ("repos", "password")):
        # Table and column names are the fixed pairs above.
        for row_id, stored in conn.execute(f"SELECT id, {column} FROM {table}").fetchall():
            sealed = box.reseal(stored)
            if sealed is not None:
                conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (sealed, row_id))


def _cluster(row: sqlite3.Row, box: SecretBox) -> ClusterRow:
    created = _ts(row["created_at"])
    assert created is not None
    return ClusterRow(row["id"], row["name"], row["server"], created, box.open(row["kubeconfig"]))


def _repo(row: sqlite3.Row, box: SecretBox) -> RepoRow:
    created = _ts(row["created_at"])
    assert created is not None
    return RepoRow(
        row["id"],
        row["name"],
        row["url"],
        row["type"],
        row["username"],
        created,
        _ts(row["synced_at"]),
        box.open(row["password"]),
    )
