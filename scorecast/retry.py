"""Score streams that survive a dropped connection, a restarted server or a dead one among several.

A bulk job is a sequence of numbered chunks. Every chunk sent is kept (encoded) until its
answer arrives, and at most ``RetryPolicy.in_flight`` are unanswered at once, so memory holds
a few chunks whatever the job's size. When a stream fails with a transient status (the server
went away, restarts, drains), a new stream is opened, on the next target when there are several,
after a backoff; it re-sends the unanswered chunks, then goes on with the rest. The server
answers a stream's chunks in order, so the answered chunks are always a prefix of the job: each
chunk index is yielded exactly once, however often the chunk was sent (a chunk scored by a server
that died before its answer arrived is scored again, and written once).

The first answer names the model versions the server used; later streams ask for those versions
(unless the caller pinned its own), so a job that moves to another server or outlives a
promotion is scored by one set of models throughout.

Retries are bounded: ``RetryPolicy.retries`` failed streams in a row with no chunk answered
between them end the job with ``RetriesExhausted``, which says how many chunks and contacts
were answered (a stream that answers a chunk resets the count, so a long job survives several
restarts).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc
import pyarrow as pa

from scorecast.proto import SERVICE_NAME, pb

__all__ = [
    "CHANNEL_OPTIONS",
    "RETRYABLE",
    "FailoverStub",
    "RetriesExhausted",
    "RetryPolicy",
    "StreamEvent",
    "Target",
    "parse_targets",
    "resilient_score",
    "wait_any_ready",
]

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED})
"""Statuses after which a new stream may succeed: the connection dropped or was refused, the
server is draining or restarting. Everything else (bad input, unknown score, auth) is final."""


_UNARY = [m.name for m in pb.DESCRIPTOR.services_by_name[SERVICE_NAME.rsplit(".", 1)[1]].methods if not m.client_streaming and not m.server_streaming]

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    # A name that resolves to several servers spreads calls over them (a failed stream's
    # successor lands on a live one); one address works as before.
    (
        "grpc.service_config",
        json.dumps(
            {
                "loadBalancingConfig": [{"round_robin": {}}],
                # unary calls are idempotent: gRPC retries them itself while a server restarts
                "methodConfig": [
                    {
                        "name": [{"service": SERVICE_NAME, "method": name} for name in _UNARY],
                        "retryPolicy": {
                            "maxAttempts": 5,
                            "initialBackoff": "0.2s",
                            "maxBackoff": "2s",
                            "backoffMultiplier": 2,
                            "retryableStatusCodes": ["UNAVAILABLE"],
                        },
                    }
                ],
            }
        ),
    ),
    # reconnect soon after a restarted server is back (gRPC's default backoff grows to 120 s,
    # longer than our retries wait)
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
"""Options of every client channel, beside the message limits."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a bulk stream retries: ``retries`` failed streams in a row at most, waiting
    ``backoff_s`` before the first retry and ``multiplier`` times longer before each next one
    (up to ``max_backoff_s``); at most ``in_flight`` chunks sent and not yet answered."""

    retries: int = 6
    backoff_s: float = 0.5
    multiplier: float = 2.0
    max_backoff_s: float = 8.0
    in_flight: int = 4

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_s < 0 or self.multiplier < 1 or self.max_backoff_s < 0 or self.in_flight < 1:
            raise ValueError(f"invalid retry policy {self}: retries, backoffs >= 0, multiplier >= 1, in_flight >= 1")

    def backoff(self, failure: int) -> float:
        """Seconds to wait before the retry after the ``failure``-th failed stream in a row (1-based)."""
        return min(self.max_backoff_s, self.backoff_s * self.multiplier ** (failure - 1))


@dataclass(frozen=True)
class StreamEvent:
    """What happened to a bulk job, for progress bars, logs and tests.

    ``kind``: "answered" (chunk ``index`` of ``rows`` contacts came back from ``target``),
    "failed" (a stream to ``target`` failed with ``error``; the next, on ``next_target``, comes
    within ``retry_in_s``), or "exhausted" (no retry left). ``answered``/``contacts``: the
    job's chunks and contacts answered so far.
    """

    kind: str
    target: str
    answered: int
    contacts: int
    index: int = -1
    rows: int = 0
    error: str = ""
    retry_in_s: float = 0.0
    next_target: str = ""


class RetriesExhausted(RuntimeError):
    """The job stopped after its retries: ``chunks`` chunks (``contacts`` contacts) were answered."""

    def __init__(self, message: str, chunks: int, contacts: int) -> None:
        super().__init__(message)
        self.chunks = chunks
        self.contacts = contacts


def parse_targets(targets: str | Sequence[str]) -> list[str]:
    """``"a:1,b:2"`` or ``["a:1", "b:2"]`` as a list of targets; ValueError when empty."""
    items = targets.split(",") if isinstance(targets, str) else list(targets)
    found = [t.strip() for t in items if t.strip()]
    if not found:
        raise ValueError(f"no server target in {targets!r}")
    return found


def _status(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None  # type: ignore[attr-defined]
    details = exc.details() if hasattr(exc, "details") else str(exc)  # type: ignore[attr-defined]
    return f"{code.name if code else 'UNKNOWN'}: {details}"


class _Job:
    """The chunks of one job: those not yet answered (``pending``, oldest first) and the rest
    of ``source``, read by one thread at a time."""

    def __init__(self, source: Iterable[Mapping[str, pa.Table]], start: int, encode: Callable[[Mapping[str, pa.Table]], pb.ContactChunk], in_flight: int) -> None:
        self.source = iter(source)
        self.encode = encode
        self.in_flight = in_flight
        self.answered = start  # job index of the first chunk not answered
        self.pending: deque[pb.ContactChunk] = deque()
        self.exhausted = False
        self.source_error: BaseException | None = None
        self.cond = threading.Condition()
        # One reader of the source at a time: a stream that failed may still be reading a
        # chunk when its successor starts; the successor waits and then re-sends that chunk.
        self.reading = threading.Lock()

    def chunk(self, index: int, stopped: threading.Event) -> pb.ContactChunk | None:
        """Chunk ``index`` (one already pending, or the source's next once fewer than
        ``in_flight`` are pending); None when the job has no more or the stream stopped."""
        with self.reading:
            with self.cond:
                while True:
                    if stopped.is_set():
                        return None
                    if index < self.answered + len(self.pending):
                        return self.pending[index - self.answered]
                    if self.exhausted or self.source_error is not None:
                        return None
                    if len(self.pending) < self.in_flight:
                        break
                    self.cond.wait()
            try:  # read outside the condition: answers go on arriving meanwhile
                tables = next(self.source, None)
                chunk = None if tables is None else self.encode(tables)
            except BaseException as exc:  # handed to the caller's thread by resilient_score
                with self.cond:
                    self.source_error = exc
                    self.cond.notify_all()
                return None
            with self.cond:
                if chunk is None:
                    self.exhausted = True
                    self.cond.notify_all()
                    return None
                self.pending.append(chunk)
                # a stream that stopped while this was read leaves it pending for the next
                return None if stopped.is_set() else chunk

    def answer(self) -> int:
        """Drop the oldest pending chunk, now answered; returns its job index."""
        with self.cond:
            self.pending.popleft()
            self.answered += 1
            self.cond.notify_all()
            return self.answered - 1

    def done(self) -> bool:
        with self.cond:
            return self.exhausted and not self.pending

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()


class Target(NamedTuple):
    """A server: its name, a scorecast.v1 stub on it and the channel under the stub."""

    name: str
    stub: Any
    channel: grpc.Channel


def _await_target(target: Target, wait: float, min_wait: float, sleep: Callable[[float], None]) -> None:
    """Wait ``wait`` seconds, less when ``target`` answers sooner (never under ``min_wait``).

    The probe is a ListModels call that waits for the channel to connect: any answer, even a
    refusal, means the server is there. (channel_ready_future would leave a polling thread that
    fails once the channel is closed.)
    """
    start = time.monotonic()
    try:
        target.stub.ListModels(pb.ListModelsRequest(), timeout=wait, wait_for_ready=True)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:  # type: ignore[attr-defined]
            return
    sleep(max(0.0, min_wait - (time.monotonic() - start)))


def resilient_score(
    targets: Sequence[Target],
    first: pb.ScoreHeader,
    chunks: Iterable[Mapping[str, pa.Table]],
    encode: Callable[[Mapping[str, pa.Table]], pb.ContactChunk],
    decode: Callable[[bytes], pa.RecordBatch],
    policy: RetryPolicy = RetryPolicy(),
    *,
    start: int = 0,
    start_contacts: int = 0,
    timeout: float | None = None,
    on_event: Callable[[StreamEvent], None] | None = None,
    on_models: Callable[[list[tuple[str, str]]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """``(job index, scores)`` for each chunk of ``chunks``, in order, over ``Score`` streams on
    ``targets`` (a failed stream's successor goes to the next one).

    Before a retry it waits the policy's backoff, less once the next target's channel connects:
    at least ``backoff_s`` on the same target (a server that refuses streams is not hammered),
    nothing more on another (failover is immediate when that one is up).

    ``start``: the job index of ``chunks``' first chunk and ``start_contacts`` the contacts
    answered before it (a resumed job skipped those).
    ``on_models`` gets the model versions of the first answer. Non-retryable statuses and
    errors reading ``chunks`` are raised as they are; RetriesExhausted after the retries.
    """
    if not targets:
        raise ValueError("no server target")
    header = pb.ScoreHeader()
    header.CopyFrom(first)
    job = _Job(chunks, start, encode, policy.in_flight)
    contacts = start_contacts
    failures = 0
    which = 0
    while True:
        current = targets[which % len(targets)]
        target = current.name
        stopped = threading.Event()
        sent_from = job.answered

        def requests(stopped: threading.Event = stopped, sent_from: int = sent_from, header: pb.ScoreHeader = header) -> Iterator[pb.ScoreRequest]:
            yield pb.ScoreRequest(header=header)
            index = sent_from
            while (chunk := job.chunk(index, stopped)) is not None:
                yield pb.ScoreRequest(chunk=chunk)
                index += 1

        call = current.stub.Score(requests(), timeout=timeout)
        try:
            for k, response in enumerate(call):
                if response.chunk_index != k:
                    raise RuntimeError(f"{target} answered chunk {response.chunk_index} of the stream where {k} was due")
                if response.models and on_models is not None:
                    on_models([(m.score, m.version) for m in response.models])
                    on_models = None  # the job's first answer only
                if response.models and not header.options.model_versions:
                    # later streams ask for the versions this one used
                    header = pb.ScoreHeader()
                    header.CopyFrom(first)
                    header.options.model_versions.update({m.score: m.version for m in response.models})
                batch = decode(response.scores)
                index = job.answer()
                failures = 0
                contacts += batch.num_rows
                if on_event is not None:
                    on_event(StreamEvent("answered", target, job.answered, contacts, index=index, rows=batch.num_rows))
                yield index, batch
            if job.source_error is not None:
                raise job.source_error
            if not job.done():
                raise RuntimeError(f"{target} ended the Score stream with {len(job.pending)} chunks unanswered")
            return
        except grpc.RpcError as exc:
            if job.source_error is not None:
                raise job.source_error from None
            if exc.code() not in RETRYABLE:  # type: ignore[attr-defined]
                raise
            failures += 1
            which += 1
            if failures > policy.retries:
                message = (
                    f"gave up after {policy.retries} retries: the last stream to {target} failed with {_status(exc)}; "
                    f"{job.answered} chunks ({contacts:,} contacts) were scored"
                )
                if on_event is not None:
                    on_event(StreamEvent("exhausted", target, job.answered, contacts, error=_status(exc)))
                raise RetriesExhausted(message, job.answered, contacts) from exc
            wait = policy.backoff(failures)
            following = targets[which % len(targets)]
            if on_event is not None:
                on_event(StreamEvent("failed", target, job.answered, contacts, error=_status(exc), retry_in_s=wait, next_target=following.name))
            _await_target(following, wait, min(wait, policy.backoff_s) if following is current else 0.0, sleep)
        finally:
            stopped.set()
            job.wake()
            call.cancel()


class FailoverStub:
    """A scorecast.v1 stub over several targets: a unary call that finds its target
    UNAVAILABLE is made again on the next ones (once each), and the first target that answers
    is used first from then on. Streaming methods go to the current target as they are
    (``resilient_score`` resumes Score streams itself)."""

    def __init__(self, targets: Sequence[Target]) -> None:
        if not targets:
            raise ValueError("no server target")
        self.targets = list(targets)
        self.current = 0

    def use(self, index: int) -> None:
        """Make target ``index`` the first one tried."""
        self.current = index % len(self.targets)

    def rotation(self) -> list[Target]:
        """The targets, from the current one on."""
        return self.targets[self.current :] + self.targets[: self.current]

    def __getattr__(self, method: str) -> Any:
        if method not in _UNARY:
            return getattr(self.targets[self.current].stub, method)
        return _FailoverCall(self, method)

    def _call(self, method: str, how: str, request: Any, kwargs: dict[str, Any]) -> Any:
        """``how`` ("__call__" or "with_call") of ``method`` on the current target, then on the
        next ones while they answer UNAVAILABLE."""
        for k in range(len(self.targets)):
            which = (self.current + k) % len(self.targets)
            try:
                response = getattr(getattr(self.targets[which].stub, method), how)(request, **kwargs)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or k == len(self.targets) - 1:  # type: ignore[attr-defined]
                    raise
                continue
            self.current = which
            return response
        raise AssertionError("unreachable")


class _FailoverCall:
    """A unary method of a ``FailoverStub``, called as grpc's multi-callables are: plainly, or
    ``with_call`` for the response and the call (its trailing metadata)."""

    def __init__(self, stub: FailoverStub, method: str) -> None:
        self._stub, self._method = stub, method

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        return self._stub._call(self._method, "__call__", request, kwargs)

    def with_call(self, request: Any, **kwargs: Any) -> Any:
        return self._stub._call(self._method, "with_call", request, kwargs)


def wait_any_ready(channels: Sequence[grpc.Channel], timeout: float) -> int:
    """The index of the first of ``channels`` to connect; grpc.FutureTimeoutError after ``timeout``."""
    ready = threading.Event()
    first: list[int] = []
    lock = threading.Lock()
    futures = [grpc.channel_ready_future(channel) for channel in channels]

    def done(k: int) -> Callable[[Any], None]:
        def callback(future: Any) -> None:
            if not future.cancelled():
                with lock:
                    first.append(k)
                ready.set()

        return callback

    for k, future in enumerate(futures):
        future.add_done_callback(done(k))
    try:
        if not ready.wait(timeout):
            raise grpc.FutureTimeoutError()
        return first[0]
    finally:
        for future in futures:
            future.cancel()
