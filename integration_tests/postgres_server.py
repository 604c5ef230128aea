"""A throwaway PostgreSQL server for tests: started on a free loopback port, stopped and deleted at the end.

    from integration_tests.postgres_server import postgres_server, postgres_database  # pytest fixtures

`postgres_server` (session) installs PostgreSQL where missing (scripts/ensure_postgres.sh: apt-get;
it never skips, it fails), runs `initdb` in a new directory under /tmp (as the `postgres` OS user
when the tests run as root: PostgreSQL refuses root) and starts it with `pg_ctl` on 127.0.0.1 only,
with trust authentication for the superuser `airbyte` (any password is accepted). `postgres_database`
creates a new database per test.

The server runs with TimeZone=UTC whatever the machine's zone: PyAirbyte (0.71.3) creates
`timestamp without time zone` columns and loads through pandas, which turns the values of columns
named like dates (`date`, `*_at`) that end in `Z` into aware datetimes; PostgreSQL then stores those
in the session's zone. Under another zone, e.g. conversation_items.date lands in local time while
conversations.last_activity (same `Z` format, other name) stays in UTC.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parent.parent
ENSURE_POSTGRES = REPO / "scripts" / "ensure_postgres.sh"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in its own directory. `start()` / `stop()`, or use it as a context manager."""

    user = "airbyte"
    password = "x"  # trust authentication: ignored, but PyAirbyte wants one
    host = "127.0.0.1"

    def __init__(self, bindir: Optional[str] = None, timezone: str = "UTC") -> None:
        self.bindir = Path(bindir or ensure_postgres())
        self.timezone = timezone
        self.port: Optional[int] = None
        self.base: Optional[Path] = None
        self._as_postgres: List[str] = []

    @property
    def datadir(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        assert self.base is not None
        return self.base / "server.log"

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = self._as_postgres + [str(self.bindir / program), *args]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        env.pop("PGTZ", None)
        proc = subprocess.run(cmd, cwd=self.base, env=env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}\n{self._log_tail()}")
        return proc

    def _log_tail(self) -> str:
        try:
            return "server log:\n" + self.logfile.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def start(self) -> "PostgresServer":
        # Short path: the Unix socket (-k) lives here too, and socket paths are limited to ~100 bytes.
        self.base = Path(tempfile.mkdtemp(prefix="allo-pg-", dir="/tmp"))
        if os.geteuid() == 0:
            shutil.chown(self.base, user="postgres", group="postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        try:
            self._run("initdb", "-U", self.user, "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync", "-D", str(self.datadir))
            last_error: Optional[Exception] = None
            for _ in range(3):  # the free port may be taken between probing and binding
                self.port = _free_port()
                options = (f"-p {self.port} -k {self.base} -c listen_addresses={self.host} -c timezone={self.timezone} "
                           "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
                proc = self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60", "-o", options, "start", check=False)
                if proc.returncode == 0:
                    return self
                last_error = RuntimeError(f"pg_ctl start failed on port {self.port}:\n{proc.stdout}\n{proc.stderr}\n{self._log_tail()}")
            raise last_error  # type: ignore[misc]
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.base is None:
            return
        try:
            if (self.datadir / "postmaster.pid").exists():
                if self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "30", "stop", check=False).returncode != 0:
                    self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "-t", "30", "stop", check=False)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def create_database(self, name: Optional[str] = None) -> str:
        name = name or f"allo_{uuid.uuid4().hex[:12]}"
        self._run("createdb", "-h", self.host, "-p", str(self.port), "-U", self.user, name)
        return name

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def ensure_postgres() -> str:
    """The directory holding initdb and pg_ctl, installing PostgreSQL where missing; fails the test otherwise."""
    proc = subprocess.run(["bash", str(ENSURE_POSTGRES)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.fail(f"PostgreSQL is needed for this test and {ENSURE_POSTGRES.name} could not provide it "
                    f"(exit {proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False)
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> str:
    """A new, empty database on the session's server."""
    return postgres_server.create_database()
