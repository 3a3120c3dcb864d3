"""``scorecast serve`` in a child process, for the demo, benchmarks and end-to-end tests.

The server listens on port 0 and writes the bound port to a file only once it is warmed up
and SERVING, so waiting for that file is waiting for readiness (no sleeps, no fixed ports).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["ServerProcess"]


class ServerProcess:
    """A running ``scorecast serve``; ``target`` is its ``127.0.0.1:PORT``. Use as a context.

    ``python``: the interpreter to run it with (default this one), e.g. another checkout's venv.
    """

    def __init__(
        self,
        models: Path,
        workdir: Path,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready_timeout_s: float = 120.0,
        verbose: bool = False,
        python: str | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port_file = workdir / f"server-{os.getpid()}-{id(self)}.port"
        self.log = workdir / "server.log"
        self.port_file.unlink(missing_ok=True)
        cmd = [python or sys.executable, "-m", "scorecast.cli", *(["-v"] if verbose else []), "serve", "--models", str(models), "--port", "0", "--port-file", str(self.port_file), *args]
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
        deadline = time.monotonic() + ready_timeout_s
        while not self.port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.proc.returncode} before it was ready; see {self.log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server was not ready within {ready_timeout_s:.0f}s; see {self.log}")
            time.sleep(0.05)
        self.port = int(self.port_file.read_text())
        self.target = f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the server process, in bytes (Linux)."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
        return out

    def listening_ports(self) -> list[int]:
        """TCP ports the server process listens on (Linux): the gRPC port and, with a metrics
        port of 0, the one it picked."""
        inodes = set()
        for fd in Path(f"/proc/{self.proc.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        ports = set()
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/{self.proc.pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return sorted(ports)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (graceful drain), then kill if it takes longer; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.port_file.unlink(missing_ok=True)
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
