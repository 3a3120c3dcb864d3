"""``scorecast serve --processes N``: N processes accept on one port, and all stop on SIGTERM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scorecast.client import ScorecastClient
from scorecast.process import ServerProcess

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="SO_REUSEPORT balancing is Linux-only")


def _children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").glob("*/children") for c in task.read_text().split()]


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (state 0A in /proc/net/tcp and tcp6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


@pytest.mark.slow
def test_processes_share_one_port_and_stop_together(repo_dir: Path, tmp_path: Path) -> None:
    """Two spawned servers each hold their own listening socket on the one port; calls on fresh
    channels are answered; SIGTERM to the parent stops both children and exits 0."""
    with ServerProcess(repo_dir, tmp_path, args=["--processes", "2"]) as server:
        children = _children(server.pid)
        listening = _listening_inodes(server.port)
        serving = [c for c in children if _socket_inodes(c) & listening]
        assert len(serving) == 2, (children, listening)
        assert not _socket_inodes(server.pid) & listening  # the parent only supervises
        for _ in range(8):  # new connections, spread by the kernel over the two
            with ScorecastClient(server.target, timeout=30) as client:
                assert sorted(m.score for m in client.list_models()) == ["affinity", "segments", "spend"]
        assert server.stop() == 0
    assert not [c for c in serving if Path(f"/proc/{c}").exists()]
