"""Build and run the gRPC server: scorecast.v1, the Open Inference Protocol, health (per model),
reflection, metrics.

``start_server`` finds the repository's accounts, loads the pinned ones (and the one account of
a repository without account folders), warms every kernel and those models on a tiny synthetic
chunk, and only then reports SERVING (``processes.serve`` runs it until a signal); other
accounts load on their first call (``server/accounts.py``). While it runs, a poller rescans the
accounts and reloads the loaded ones when their files change (``reload_interval_s``;
``ReloadModels`` does the same on demand) and health follows the default account's scores. On SIGTERM or SIGINT it reports NOT_SERVING, stops taking new calls, and
lets in-flight streams finish within ``grace_s``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from concurrent import futures
from dataclasses import dataclass

import grpc
import pyarrow as pa
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from scorecast import kernels
from scorecast.accounts import DEFAULT_ACCOUNT
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.options import ScoreSpec
from scorecast.proto import OIP_SERVICE_NAME, SERVICE_NAME, oip_rpc, pb, rpc

from .accounts import AccountRegistry
from .admission import RESERVED_THREADS, AdmissionInterceptor
from .batching import Batcher
from .config import ServerSettings
from .limits import DecodeBudget
from .metrics import ServerMetrics
from .oip import OipServicer
from .pipeline import ScoringPipeline
from .repository import ModelRepository, ReloadReport
from .runtime import warm_runtime
from .security import TokenAuthInterceptor, load_tokens, server_credentials
from .servicer import ScorecastServicer
from .usage import UsageWriter

__all__ = ["RunningServer", "channel_options", "start_server", "warm_up"]

log = logging.getLogger(__name__)


def warm_up(repositories: Iterable[ModelRepository]) -> float:
    """Compile (or load from numba's cache) every kernel, then run every default model of the
    given repositories through the whole pipeline once; seconds. Called before health reports SERVING."""
    start = time.perf_counter()
    kernels.warm_up()
    now_us = time.time_ns() // 1_000
    day = US_PER_DAY
    orders = pa.table(
        {
            "contact_id": pa.array([1, 1, 2], pa.int64()),
            "ts": pa.array([now_us - 40 * day, now_us - 3 * day, now_us - 90 * day], pa.timestamp("us", tz="UTC")),
            "amount": [10.0, 20.0, 5.0],
            "sku": ["a", "b", "a"],
            "product_group": ["g", "g", "h"],
            "promo": [False, True, False],
        }
    )
    for repository in repositories:
        for model in repository.defaults():
            ScoringPipeline(repository, ScoreSpec(scores=(model.meta.score,), as_of_us=now_us)).score({"orders": orders})
    return time.perf_counter() - start


@dataclass
class RunningServer:
    """A started server and what its owner needs to reload or stop it."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    registry: AccountRegistry
    metrics: ServerMetrics
    metrics_port: int | None = None
    batcher: Batcher | None = None
    admission: AdmissionInterceptor | None = None
    _stopping: threading.Event | None = None
    _reload_lock: threading.Lock | None = None
    _usage: UsageWriter | None = None

    @property
    def repository(self) -> ModelRepository | None:
        """The default account's models (the whole repository when it has no account folders)."""
        return self.registry.repository(DEFAULT_ACCOUNT)

    def _default_scores(self) -> set[str]:
        repository = self.repository
        return set(repository.scores) if repository is not None else set()

    def reload(self, account: str | None = None) -> dict[str, ReloadReport]:
        """Rescan the accounts and reload the loaded ones (or just ``account``); health follows the
        default account's scores. Reports by account."""
        assert self._reload_lock is not None
        with self._reload_lock:
            before = self._default_scores()
            try:
                reports = self.registry.reload(account)
            except Exception:
                self.metrics.reloads.labels("failed").inc()
                raise
            after = self._default_scores()
            for score in after:
                self.health.set(f"{SERVICE_NAME}/{score}", health_pb2.HealthCheckResponse.SERVING)
            for score in before - after:
                self.health.set(f"{SERVICE_NAME}/{score}", health_pb2.HealthCheckResponse.NOT_SERVING)
            _publish_models(self.metrics, self.repository)
            changed = any(r.changed for r in reports.values())
            self.metrics.reloads.labels("changed" if changed else "unchanged").inc()
            for name, report in reports.items():
                if report.changed:
                    log.info("reload of %r: loaded %s, unloaded %s, %d failed", name, report.loaded, report.unloaded, len(report.failed))
            return reports

    def _poll(self, interval_s: float) -> None:
        assert self._stopping is not None
        while not self._stopping.wait(interval_s):
            try:
                if self.registry.changed():
                    self.reload()
            except Exception:  # a bad moment on disk must not kill the poller
                log.exception("repository poll failed; trying again in %.0fs", interval_s)

    def stop(self, grace_s: float | None = None) -> None:
        """Report NOT_SERVING, then stop; in-flight calls get ``grace_s`` to finish."""
        if self._stopping is not None:
            self._stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        if self._usage is not None:
            self._usage.stop()
        self.metrics.close()


def _publish_models(metrics: ServerMetrics, repository: ModelRepository | None) -> None:
    if repository is None:
        return
    served = [(s, v, m.load_seconds) for s, versions in repository.models.items() for v, m in versions.items()]
    metrics.models(served, len(repository.failures))


def channel_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """gRPC core options: message limits, keepalive pings, connection age."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 1),  # grpc's Linux default, stated: `--processes N` relies on it
        ("grpc.keepalive_time_ms", int(settings.keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    if settings.max_connection_age_s > 0:
        options += [
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * 1000)),
        ]
    return options


def start_server(settings: ServerSettings, repository: ModelRepository | None = None) -> RunningServer:
    """Find the accounts, load (unless given) and warm the pinned ones, start serving, report
    SERVING; returns at once. ``repository``: the default account's models, already loaded."""
    kernels.passive_openmp()  # before any kernel loads OpenMP
    warm_runtime(settings.session_options)  # before any account's load is measured
    metrics = ServerMetrics()
    registry = AccountRegistry(
        repository.root if repository is not None else settings.models,
        settings.session_options,
        budget=settings.model_memory_budget,
        eviction=settings.eviction,
        pinned=settings.pinned_accounts,
        retry_s=settings.account_retry_s,
        metrics=metrics,
        preloaded=repository,
    )
    if registry.single:
        default = registry.repository(DEFAULT_ACCOUNT)
        if default is None or not default.scores:
            failures = default.failures.values() if default is not None else ()
            problems = "; ".join(failures) or "it holds no <score>/<version>.onnx file"
            raise RuntimeError(f"no model to serve in {settings.models}: {problems}")
    registry.max_calls = settings.max_calls_per_account or (None if registry.single else math.ceil(settings.max_workers / 2))
    loaded = [r for r in (registry.repository(a) for a in registry.loaded()) if r is not None]
    warm_seconds = warm_up(loaded)
    registry.settle()  # the warmed server's RSS: the base the budget is counted over
    log.info("warmed up %d accounts' models in %.2fs (%d accounts known)", len(loaded), warm_seconds, len(registry.known()))

    # Admission first: it wraps whatever the token check answers, so a refused call holds no slot.
    admission = AdmissionInterceptor(
        settings.max_workers,
        settings.max_streams,
        settings.idle_timeout_s,
        settings.max_queued_calls,
        settings.max_queue_wait_ms / 1e3,
        metrics.queue_wait.observe,
        settings.max_queued_bytes,
    )
    interceptors: list[grpc.ServerInterceptor] = [admission]
    if settings.tokens_file is not None:
        plaintext = settings.tls_cert is None
        interceptors.append(TokenAuthInterceptor(load_tokens(settings.tokens_file), settings.admin_methods, plaintext))
    threads = settings.max_workers + settings.max_queued_calls + RESERVED_THREADS  # queued calls wait on a thread
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads), options=channel_options(settings), interceptors=interceptors)
    batcher = Batcher.from_settings(settings, metrics.batch)
    health_servicer = health.HealthServicer()
    running = RunningServer(server, 0, health_servicer, registry, metrics, None, batcher, admission, threading.Event(), threading.Lock())
    servicer = ScorecastServicer(
        registry,
        settings.max_rows_per_chunk,
        settings.max_rows_per_request,
        metrics,
        running.reload,
        settings.base_roots,
        budget=DecodeBudget(settings.max_decoded_bytes_per_chunk, settings.max_event_rows_per_chunk),
        max_topn_n=settings.max_topn_n,
        max_base_bytes=settings.max_base_bytes,
        batcher=batcher,
    )
    rpc.add_ScorecastServicer_to_server(servicer, server)
    oip_rpc.add_GRPCInferenceServiceServicer_to_server(OipServicer(registry, settings.max_rows_per_chunk, servicer.budget, metrics, batcher), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (pb.DESCRIPTOR.services_by_name["Scorecast"].full_name, OIP_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{settings.host}:{settings.port}"
    if settings.tls_cert is not None and settings.tls_key is not None:
        port = server.add_secure_port(address, server_credentials(settings.tls_cert, settings.tls_key, settings.tls_client_ca))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not listen on {settings.host}:{settings.port}")
    running.port = port
    if settings.metrics_port >= 0:
        running.metrics_port = metrics.serve_http(settings.host, settings.metrics_port)
    _publish_models(metrics, running.repository)
    server.start()
    for score in running._default_scores():
        health_servicer.set(f"{SERVICE_NAME}/{score}", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    security = ("TLS" + (" + client certificates" if settings.tls_client_ca else "")) if settings.tls_cert else "plaintext"
    security += ", tokens" if settings.tokens_file else ", no tokens"
    if settings.insecure and settings.tls_cert is None and settings.tokens_file is None:
        log.warning("serving %s in the clear with no tokens (setting insecure): anyone who reaches the port can call it", settings.host)
    if settings.usage_file is not None:
        running._usage = UsageWriter(registry, settings.usage_file, settings.usage_interval_s).start()
    if settings.reload_interval_s > 0:
        threading.Thread(target=running._poll, args=(settings.reload_interval_s,), name="scorecast-reload", daemon=True).start()
    metrics_at = f", metrics on :{running.metrics_port}" if running.metrics_port is not None else ""
    log.info(
        "serving %d accounts (%s loaded, budget %.0f MB) on %s:%d (%s; %s%s)",
        len(registry.known()), len(registry.loaded()), settings.model_memory_budget / 1e6, settings.host, port, settings.device, security, metrics_at,
    )  # fmt: skip
    return running

