"""A real PostgreSQL server for the site tests: the distribution's package, its initdb and postgres
run as an unprivileged user in a temporary folder, on a free port of 127.0.0.1 (trust auth: only
the loopback can reach it). It can be stopped and started again with its data kept."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.servers import free_port, wait_for_port

UNPRIVILEGED = "nobody"
USER = "kiosk"


def postgres_bin() -> Path | None:
    """The newest installed server's bin folder (Debian keeps them in /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


class PostgresServer:
    def __init__(self) -> None:
        self.bin = postgres_bin()
        if self.bin is None:
            raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="postgres-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._user = pwd.getpwnam(UNPRIVILEGED) if os.geteuid() == 0 else None
        if self._user is not None:  # root: the server runs as nobody, in a folder nobody owns
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
        self.process: subprocess.Popen | None = None
        subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                        "--encoding=UTF8", "--locale=C", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.folder, **self._as_user())

    def _as_user(self) -> dict:
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []} if self._user else {}

    def start(self) -> PostgresServer:
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", f"unix_socket_directories={self.folder}", "-c", "fsync=off", "-c", "max_connections=100"],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "server.log", "ab"), cwd=self.folder, **self._as_user())
        wait_for_port(self.port, up=True)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        """The port opens before the server accepts sessions ("the database system is starting up")."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): clients are disconnected, committed data kept."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(30)
        wait_for_port(self.port, up=False)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database on this server; its URL."""
        import psycopg

        name = "site_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def started_server() -> "PostgresServer":
    """A started server for a test module's fixture; the test is skipped where PostgreSQL is missing."""
    import pytest

    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    return PostgresServer().start()
