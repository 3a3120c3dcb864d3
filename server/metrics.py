"""Prometheus metrics of one server: requests, rows, errors, latency, model loads, stage time.

Each server owns a ``CollectorRegistry`` (several servers in one process, as in the tests,
do not mix their counts); ``serve_http`` exposes it on ``/metrics``. Stage time splits a
request's scoring into kernels (``features``), ONNX Runtime (``onnx``) and building the
Arrow result (``assemble``): the "ONNX Runtime vs the rest" an operator asks about.

Accounts have no label: at 10,000 accounts a label per account would be 10,000 series per
metric. The account gauges and counters are server-wide (accounts known and loaded, measured
bytes held against the budget, loads, evictions, load failures, load time); what each account
used is in the usage file (``server/usage.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["UNKNOWN_SCORE", "ServerMetrics"]

UNKNOWN_SCORE = "unknown"
"""The one label value of every requested score the server does not serve (bounded label sets)."""

# Account load time: a few ms (five small models) to seconds (large recommenders).
_LOAD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Latency buckets from one-contact requests (~1 ms) to million-contact streams (minutes).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_ROW_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)


class ServerMetrics:
    """The server's metrics, registered in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("scorecast_requests", "Calls by method and final gRPC status", ["method", "code"], registry=r)
        self.latency = Histogram("scorecast_request_seconds", "Call duration by method", ["method"], buckets=_BUCKETS, registry=r)
        self.rows = Counter("scorecast_rows", "Contacts scored, by score", ["score"], registry=r)
        self.score_errors = Counter(
            "scorecast_score_errors", "Failed scoring calls by requested score and status", ["score", "code"], registry=r
        )
        self.stage_seconds = Counter(
            "scorecast_stage_seconds", "Scoring time by stage: features (kernels), onnx, assemble", ["stage"], registry=r
        )
        self.model_load_seconds = Gauge(
            "scorecast_model_load_seconds", "Load time of each served model version", ["score", "version"], registry=r
        )
        self.models_served = Gauge("scorecast_models_served", "Model versions being served", registry=r)
        self.model_load_failures = Gauge("scorecast_model_load_failures", "Model files that failed to load", registry=r)
        self.batch_calls = Histogram(
            "scorecast_batch_calls", "Calls scored in one pipeline pass (dynamic batching; 1: alone)", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_rows = Histogram("scorecast_batch_rows", "Contacts scored in one batched pass", buckets=_ROW_BUCKETS, registry=r)
        self.queue_wait = Histogram(
            "scorecast_queue_wait_seconds", "Time calls that found every slot held waited for one", buckets=_BUCKETS, registry=r
        )
        self.reloads = Counter("scorecast_reloads", "Repository reloads by result (changed, unchanged, failed)", ["result"], registry=r)
        self.accounts_known = Gauge("scorecast_accounts_known", "Accounts with a folder in the repository", registry=r)
        self.accounts_loaded = Gauge("scorecast_accounts_loaded", "Accounts whose models are loaded", registry=r)
        self.model_bytes_held = Gauge("scorecast_model_bytes_held", "Measured bytes of the loaded models", registry=r)
        self.model_memory_budget = Gauge("scorecast_model_memory_budget_bytes", "Setting model_memory_budget", registry=r)
        self.model_memory_surplus = Gauge(
            "scorecast_model_memory_surplus_bytes", "Resident bytes beyond the base and the loaded models, counted in the budget", registry=r
        )
        self.account_loads = Counter("scorecast_account_loads", "Accounts loaded on demand (or pinned at start)", registry=r)
        self.account_evictions = Counter("scorecast_account_evictions", "Accounts unloaded to stay within the budget", registry=r)
        self.account_load_failures = Counter("scorecast_account_load_failures", "Account loads that failed", registry=r)
        self.account_load_seconds = Histogram(
            "scorecast_account_load_seconds", "Time to load an account's models", buckets=_LOAD_BUCKETS, registry=r
        )
        self._http: WSGIServer | None = None
        self._served: frozenset[str] = frozenset()
        self._account_scores: frozenset[str] = frozenset()  # score names of every account loaded so far
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once: prometheus_client checks and locks on
        every call, a tenth of a one-contact request's time. Label sets are bounded (methods,
        codes, served scores, stages) and these metrics are never cleared."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _label(self, score: str) -> str:
        return score if score in self._served or score in self._account_scores else UNKNOWN_SCORE

    def serve_scores(self, scores: Iterable[str]) -> None:
        """Add the scores of a loaded account to the label values (names of folders the operator
        made, never a caller's: bounded however many accounts)."""
        new = frozenset(scores) - self._account_scores
        if new:
            self._account_scores |= new

    def call(self, method: str, code: str, seconds: float, scores: Iterable[str] = ()) -> None:
        """Record one finished call."""
        self._child(self.requests, method, code).inc()
        self._child(self.latency, method).observe(seconds)
        if code != "OK":
            for label in {self._label(score) for score in scores}:
                self.score_errors.labels(label, code).inc()

    def scored(self, scores: Iterable[str], rows: int) -> None:
        """Record ``rows`` contacts scored for each score."""
        for score in scores:
            self._child(self.rows, self._label(score)).inc(rows)

    def stages(self, seconds: Mapping[str, float]) -> None:
        """Add a request's time per pipeline stage."""
        for stage, value in seconds.items():
            self._child(self.stage_seconds, stage).inc(value)

    def batch(self, calls: int, rows: int) -> None:
        """Record one batched pass: how many calls, how many contacts."""
        self.batch_calls.observe(calls)
        self.batch_rows.observe(rows)

    def models(self, loaded: Iterable[tuple[str, str, float]], failures: int) -> None:
        """Set the served models (score, version, load seconds) and the failure count; only their
        scores are label values of the per-score metrics."""
        self.model_load_seconds.clear()
        n = 0
        served = set()
        for score, version, seconds in loaded:
            self.model_load_seconds.labels(score, version).set(seconds)
            served.add(score)
            n += 1
        self._served = frozenset(served)
        self.models_served.set(n)
        self.model_load_failures.set(failures)

    def accounts(self, known: int, loaded: int, held_bytes: int, budget: int, surplus_bytes: int = 0) -> None:
        """Set the account gauges."""
        self.accounts_known.set(known)
        self.accounts_loaded.set(loaded)
        self.model_bytes_held.set(held_bytes)
        self.model_memory_budget.set(budget)
        self.model_memory_surplus.set(surplus_bytes)

    def account_loaded(self, seconds: float) -> None:
        """Count one account load and its time."""
        self.account_loads.inc()
        self.account_load_seconds.observe(seconds)

    def account_load_failed(self) -> None:
        """Count one failed account load."""
        self.account_load_failures.inc()

    def account_evicted(self) -> None:
        """Count one account evicted."""
        self.account_evictions.inc()

    def serve_http(self, host: str, port: int) -> int:
        """Expose ``/metrics`` over HTTP on a daemon thread; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return server.server_port

    def close(self) -> None:
        """Stop the HTTP endpoint, if started."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
