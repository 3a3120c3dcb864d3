"""``scorecast serve``: one server until a signal, or N processes on one port (SO_REUSEPORT).

Each process has its own GIL, repository and ONNX Runtime sessions; the kernel spreads new
connections over them. The parent starts the children with ``spawn`` (never fork: a forked
child would inherit numba's OpenMP and ONNX Runtime thread pools in a broken state) before it
has loaded anything, reserves the port for them, and only supervises: it writes the port file
and prints the banner once every child is SERVING, forwards SIGTERM/SIGINT, and stops them all
if one dies. Linux only (SO_REUSEPORT balancing).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import socket
import threading
from dataclasses import replace

from .app import start_server
from .config import ServerSettings
from .logs import configure
from .runtime import share_thread_pools

__all__ = ["serve", "serve_processes"]

log = logging.getLogger(__name__)


def _reserve_port(host: str, port: int) -> socket.socket:
    """A bound, not listening SO_REUSEPORT socket: holds the port (port 0 picks one) for the children."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _child(settings: ServerSettings, ready: mp.synchronize.Event, stop: mp.synchronize.Event, log_level: int) -> None:
    configure(settings.log_format, log_level)  # spawned: the parent's logging set-up is not inherited
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    share_thread_pools(settings.intra_op_threads, settings.inter_op_threads)  # this process only serves
    running = start_server(settings)
    ready.set()
    stop.wait()
    running.stop(settings.grace_s)


def serve_processes(settings: ServerSettings) -> None:
    """Run ``settings.processes`` servers on one port until SIGTERM/SIGINT, then drain them all."""
    reserved = _reserve_port(settings.host, settings.port)
    port = reserved.getsockname()[1]
    child_settings = replace(settings, port=port, port_file=None, processes=1)
    context = mp.get_context("spawn")
    stop = context.Event()
    children = []
    for i in range(settings.processes):
        ready = context.Event()
        # each process serves its own /metrics: metrics_port + i (Prometheus scrapes them all)
        metrics_port = settings.metrics_port + i if settings.metrics_port > 0 else settings.metrics_port
        args = (replace(child_settings, metrics_port=metrics_port), ready, stop, logging.getLogger().level)
        process = context.Process(target=_child, args=args, daemon=False)
        process.start()
        children.append((process, ready))
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        for process, ready in children:
            while not ready.wait(0.1):
                if not process.is_alive() or stopping.is_set():
                    raise RuntimeError(f"a server process exited with code {process.exitcode} before it was ready")
        reserved.close()
        if settings.port_file is not None:
            tmp = settings.port_file.with_suffix(".tmp")
            tmp.write_text(str(port))
            tmp.replace(settings.port_file)
        print(f"scorecast serving on {settings.host}:{port} with {settings.processes} processes", flush=True)
        while not stopping.wait(0.5):
            dead = [p for p, _ in children if not p.is_alive()]
            if dead:
                raise RuntimeError(f"server process {dead[0].pid} exited with code {dead[0].exitcode}")
    finally:
        reserved.close()
        stop.set()
        for process, _ in children:
            process.join(settings.grace_s + 10)
            if process.is_alive():
                process.kill()
                process.join()


def serve(settings: ServerSettings) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully."""
    if settings.processes > 1:
        serve_processes(settings)
        return
    share_thread_pools(settings.intra_op_threads, settings.inter_op_threads)  # this process only serves
    running = start_server(settings)
    if settings.port_file is not None:
        tmp = settings.port_file.with_suffix(".tmp")
        tmp.write_text(str(running.port))
        tmp.replace(settings.port_file)  # readers never see a half-written port
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    default = running.repository
    served = ", ".join(default.scores) if default is not None and running.registry.single else f"{len(running.registry.known())} accounts"
    print(f"scorecast serving {served} on {settings.host}:{running.port}", flush=True)
    stop.wait()
    log.info("shutting down: in-flight calls have %.0fs to finish", settings.grace_s)
    running.stop(settings.grace_s)
