"""A PostgreSQL server of the test's own, to stop and start: a real database outage without touching
the server the other tests (and other people) share.

``initdb`` into a temporary directory, ``pg_ctl start`` on a free port, trust authentication for
``postgres``. As root (CI containers) the server runs as the ``postgres`` user, as PostgreSQL requires.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pg_bin() -> Path:
    """The newest installed server's programs, found as the set-up script finds them (MOTCUA_PG_BIN wins)."""
    found = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure-services.sh"), "pg-bindir"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if found.returncode != 0:
        raise RuntimeError(f"PostgreSQL server programs not found: {found.stderr.strip()}")
    return Path(found.stdout.strip())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivatePostgres:
    """One throw-away cluster; :meth:`stop` and :meth:`start` are the outage."""

    def __init__(self) -> None:
        self.bin = pg_bin()
        if not (self.bin / "initdb").exists():
            raise RuntimeError(f"PostgreSQL server binaries not found in {self.bin} (set MOTCUA_PG_BIN)")
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="motcua-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(self.bin / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync")
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nshared_buffers = 16MB\nmax_connections = 60\n"
            )
        self.start()

    def _run(self, *command: object) -> None:
        argv = [str(part) for part in command]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "log", "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` closes every connection (a restart or failover as clients see it); ``immediate``
        is a crash."""
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def create_database(self, name: str) -> str:
        import sqlalchemy as sa

        admin = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def destroy(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            time.sleep(0.1)
            shutil.rmtree(self.root, ignore_errors=True)
