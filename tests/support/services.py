"""Real services for the tests: a PostgreSQL server and a two-node Ray cluster on loopback.

Each starts once per session, on first use (``postgres`` and ``ray_cluster`` fixtures in
``tests/conftest.py``), on free ports of 127.0.0.1, in a temporary folder, and is stopped at
the end of the session. Nothing here stops a process it did not start: PostgreSQL is stopped
through ``pg_ctl`` on its own data folder, and each Ray node runs as a ``ray start --block``
child in a process group of its own, ended by its id (``ray stop`` would end every Ray
process of the machine, other users' too).

Where a service cannot start (no PostgreSQL binaries, no ``ray``), its tests skip with the
reason; ``SCORECAST_REQUIRE_POSTGRES=1`` / ``SCORECAST_REQUIRE_RAY_CLUSTER=1`` (set by
``.ci/run``) turn that skip into a failure.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from scorecast import postgres
from scorecast.base import table_names

__all__ = ["DRIVER_ENV", "PostgresServer", "RayCluster", "free_port", "is_loopback", "load_base", "ray_env", "start_postgres", "start_ray_cluster", "unavailable"]

PG_USER = "scorecast"
PG_DATABASE = "scorecast"
PG_OS_USER = "postgres"  # PostgreSQL refuses to run as root: as root, the server runs as this user
START_TIMEOUT_S = 120.0
RAY_IP = "127.0.0.1"
"""The Ray nodes' address. Ray's GCS, raylets and workers listen on 127.0.0.1 only when this is
exactly their node address, and on every interface otherwise (even for 127.0.0.2)."""

_RAY_START = (
    "import sys; from ray._private import services; services.resolve_ip_for_localhost = lambda host: host; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())"
)
"""``ray start`` taking 127.0.0.1 as given. Ray's Python swaps it for the machine's outward
address (``services.resolve_ip_for_localhost``, in ``--node-ip-address`` and ``--address``), and
then every server listens on all interfaces and talks over that address; no setting stops it."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port of ``host`` free at this moment."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def unavailable(service: str, variable: str, reason: str) -> None:
    """Skip the test with ``reason``, or fail it when ``variable`` requires the service."""
    if os.environ.get(variable) == "1":
        pytest.fail(f"{variable}=1 but {service} is not available: {reason}")
    pytest.skip(f"{service} is not available ({reason}); CI starts it and sets {variable}=1")


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL server: a superuser ``scorecast`` with a password, database ``scorecast``."""

    port: int
    password: str
    folder: Path

    def url(self, *, user: str = PG_USER, password: str | None = None, database: str = PG_DATABASE, **query: str) -> str:
        """A ``postgresql://`` URL of this server (the superuser's password unless given)."""
        secret = self.password if password is None else password
        tail = "&".join(f"{k}={v}" for k, v in query.items())
        return f"postgresql://{user}:{secret}@127.0.0.1:{self.port}/{database}" + (f"?{tail}" if tail else "")

    def execute(self, *statements: str) -> None:
        """Run SQL statements as the superuser, committed."""
        import adbc_driver_postgresql.dbapi as pg

        with pg.connect(self.url()) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            conn.commit()

    def query(self, sql: str) -> list[tuple]:
        """The rows of one query, as the superuser."""
        import adbc_driver_postgresql.dbapi as pg

        with pg.connect(self.url()) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()


def _postgres_bin() -> Path | None:
    """The folder of initdb/pg_ctl: on PATH, else Debian's newest /usr/lib/postgresql/<v>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", PG_OS_USER, "--", *command]


@contextlib.contextmanager
def start_postgres() -> Iterator[PostgresServer]:
    """Run a fresh PostgreSQL server for the block; raises RuntimeError naming why it cannot."""
    binaries = _postgres_bin()
    if binaries is None:
        raise RuntimeError("no initdb on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(PG_OS_USER)
        except KeyError:
            raise RuntimeError(f"running as root and there is no {PG_OS_USER!r} user to run PostgreSQL as") from None
    folder = Path(tempfile.mkdtemp(prefix="scorecast-pg-"))
    data = folder / "data"
    password = secrets.token_urlsafe(12)
    (folder / "pw").write_text(password)
    if os.geteuid() == 0:
        for path in (folder, folder / "pw"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = free_port()
    log = folder / "server.log"
    try:
        _run(
            _as_server_user(
                [
                    str(binaries / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={folder / 'pw'}",
                    "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync",
                ]
            ),
            "initdb",
        )
        # loopback only, no durability (a test server), sockets in its own folder
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"]), "pg_ctl start")
    except RuntimeError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"{exc}\n{log.read_text() if log.exists() else ''}") from None
    server = PostgresServer(port, password, folder)
    try:
        import adbc_driver_postgresql.dbapi as pg

        # CREATE DATABASE cannot run in a transaction
        with pg.connect(server.url(database="postgres"), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {PG_DATABASE}")
        yield server
    finally:
        subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


@dataclass(frozen=True)
class RayCluster:
    """Two Ray nodes on this machine: ``address`` is the head's GCS, ``node_ids`` both nodes'."""

    address: str
    node_ids: tuple[str, ...]
    temp_dir: Path
    env: dict[str, str]
    """What a driver's environment needs to join (``ray_env`` and ``DRIVER_ENV``)."""
    sessions: tuple[int, ...] = ()
    """The process sessions of the two ``ray start`` children: every process of the nodes."""

    def sockets(self) -> list[tuple[str, str, str, str]]:
        """(state, local address, peer address, process) of every TCP socket of the nodes' processes (``ss``)."""
        done = subprocess.run(["ss", "-tanpH"], capture_output=True, text=True, check=True)
        out = []
        for line in done.stdout.splitlines():
            fields = line.split()
            pids = {int(p) for p in _PID.findall(fields[-1])} if len(fields) > 5 else set()
            if any(_session(pid) in self.sessions for pid in pids):
                out.append((fields[0], fields[3], fields[4], fields[-1]))
        return out


_PID = re.compile(r"pid=(\d+)")


def _session(pid: int) -> int | None:
    """The session id of a process (None once it has gone)."""
    try:
        return os.getsid(pid)
    except ProcessLookupError:
        return None


def is_loopback(address: str) -> bool:
    """Whether an ``ss`` address (``127.0.0.1:5``, ``[::ffff:127.0.0.1]:5``, ``*:5``) is a loopback one."""
    host = address.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
    return host == "::1" or host.startswith("127.")


def ray_env(token: str) -> dict[str, str]:
    """What every process of the test cluster and its drivers needs in its environment: the
    cluster's own token (not ``~/.ray/auth_token``, which other users' clusters on this
    machine may have written)."""
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
    }


DRIVER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""What a driver of the test cluster needs besides ``ray_env``: ``ray.init(address="127.0.0.1:…")``
swaps the loopback address for the outward one unless Ray believes it runs single-machine (this
flag's only other effect is in ``ray start`` of a worker node, which drivers never run)."""


def _ray_node(temp_dir: Path, head: bool, gcs_port: int, cpus: int, env: dict[str, str]) -> subprocess.Popen:
    """``ray start --block`` of one node, every port chosen free (other users' clusters may hold the defaults)."""
    # the worker range first, then every other port outside it and unlike the others (free
    # ports picked one by one can fall inside the range)
    first = free_port(RAY_IP)
    while first <= gcs_port <= first + 40:
        first = free_port(RAY_IP)
    taken = {*range(first, first + 41), gcs_port}
    ports = []
    for flag in (
        "--node-manager-port", "--object-manager-port", "--runtime-env-agent-port", "--dashboard-agent-grpc-port",
        "--dashboard-agent-listen-port", "--metrics-export-port", "--ray-client-server-port",
    ):  # fmt: skip
        port = free_port(RAY_IP)
        while port in taken:
            port = free_port(RAY_IP)
        taken.add(port)
        ports += [flag, str(port)]
    if not head:
        ports = ports[:-2]  # the client server is the head's
    command = [
        sys.executable, "-c", _RAY_START, "start", "--block", "--node-ip-address", RAY_IP, "--num-cpus", str(cpus), "--num-gpus", "0",
        "--object-store-memory", str(150 * 2**20), "--disable-usage-stats",
        "--min-worker-port", str(first), "--max-worker-port", str(first + 40), *ports,
    ]  # fmt: skip
    if head:
        command += [
            "--head", "--port", str(gcs_port), "--include-dashboard=false", "--temp-dir", str(temp_dir),
        ]  # fmt: skip
    else:
        command += ["--address", f"{RAY_IP}:{gcs_port}"]
    with open(temp_dir.parent / f"{'head' if head else 'worker'}.log", "wb") as log:  # the child keeps its own copy
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **env})


def _alive_nodes(address: str, env: dict[str, str]) -> list[str]:
    """The ids of the cluster's live nodes, asked from a separate driver process (this one may use another Ray)."""
    code = (
        "import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False);"
        "print(' '.join(n['NodeID'] for n in ray.nodes() if n['Alive']))"
    )
    done = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True, timeout=60, env={**os.environ, **env, **DRIVER_ENV})
    return done.stdout.split() if done.returncode == 0 else []


def _stop(node: subprocess.Popen) -> None:
    """End a ``ray start --block`` child: SIGTERM lets it stop its node's processes; then its group."""
    if node.poll() is None:
        node.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(node.pid, signal.SIGKILL)  # its own session: only what it started
    node.wait()


@contextlib.contextmanager
def start_ray_cluster(cpus_per_node: int = 1) -> Iterator[RayCluster]:
    """A head and a worker node on ``RAY_IP`` for the block; RuntimeError naming why it cannot start."""
    ray = Path(sys.executable).with_name("ray")
    if not ray.exists():
        raise RuntimeError(f"no ray command beside {sys.executable} (pip install 'scorecast[ray]')")
    # short: Ray puts Unix sockets under it (108 bytes at most)
    folder = Path(tempfile.mkdtemp(prefix="scr-", dir="/tmp"))
    temp_dir = folder / "r"
    temp_dir.mkdir()
    port = free_port(RAY_IP)
    address = f"{RAY_IP}:{port}"
    env = ray_env(secrets.token_hex(32))
    nodes = [_ray_node(temp_dir, True, port, cpus_per_node, env)]
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _alive_nodes(address, env):
            if nodes[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start: {(folder / 'head.log').read_text(errors='replace')[-2000:]}")
        nodes.append(_ray_node(temp_dir, False, port, cpus_per_node, env))
        while len(ids := _alive_nodes(address, env)) < 2:
            if nodes[1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray worker node did not join: {(folder / 'worker.log').read_text(errors='replace')[-2000:]}")
            time.sleep(1)
        yield RayCluster(address, tuple(ids), temp_dir, {**env, **DRIVER_ENV}, tuple(node.pid for node in nodes))
    finally:
        for node in reversed(nodes):
            _stop(node)
        shutil.rmtree(folder, ignore_errors=True)

def load_base(server: PostgresServer, folder: Path, schema: str) -> None:
    """Every table of a Parquet base into ``schema``."""
    location = postgres.parse_url(server.url(schema=schema))
    for name in table_names(folder):
        postgres.write_table(location, name, ds.dataset(folder / f"{name}.parquet").to_table())
