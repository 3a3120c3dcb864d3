"""Admission: how many scorecast.v1 calls and streams run at once, how many wait, and how long
a stream may idle.

Every scorecast.v1 call takes a slot (``max_workers``), a Score or TopN stream a stream slot
too (``max_streams``, fewer than ``max_workers``, so streams always leave threads to unary
calls). A call that finds every slot held waits for one, first come first served, in a queue
of at most ``max_queued_calls`` calls holding at most ``max_queued_bytes`` of requests, for at
most ``max_queue_wait_ms`` (or its deadline, if sooner); past any of them it is
RESOURCE_EXHAUSTED naming the setting. A stream that finds no
stream slot is refused at once: streams are long, a queue of them would only hide the refusal.
A waiting call holds one of the pool's threads and no CPU. The server's thread pool has
``RESERVED_THREADS`` more threads than slots and queue places, and health and reflection take
no slot, so they answer while every scoring slot is held. A stream whose caller sends no
message for ``idle_timeout_s`` is ended with DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from scorecast.proto import OIP_SERVICE_NAME, SERVICE_NAME

from .errors import ScorecastError
from .security import abort_handler

__all__ = ["RESERVED_THREADS", "AdmissionInterceptor", "IdleStream", "Slots", "idle_limited"]

RESERVED_THREADS = 4
"""Threads beyond ``max_workers`` for health, reflection and refusing calls over the limits."""

_END = object()


class IdleStream(ScorecastError):
    """A stream's caller sent nothing for longer than the idle timeout."""

    status = grpc.StatusCode.DEADLINE_EXCEEDED

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no message on this stream for {seconds:g}s (setting idle_timeout_s); the call is ended")


def idle_limited(requests: Iterator[Any], idle_s: float) -> Iterator[Any]:
    """``requests`` as they come, raising IdleStream when none comes for ``idle_s`` seconds.

    gRPC's request iterator blocks without a timeout, so a helper thread reads it one message
    ahead; it ends when the call does (the iterator then stops or raises).
    """
    box: queue.Queue[Any] = queue.Queue(maxsize=1)  # one message ahead: flow control stays with the caller
    closed = threading.Event()

    def put(item: Any) -> bool:
        while not closed.is_set():
            try:
                box.put(item, timeout=0.25)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for message in requests:
                if not put(message):
                    return  # the handler is done with the stream
        except Exception as exc:  # the call ended (cancelled, aborted): hand it over
            put(exc)
            return
        put(_END)

    threading.Thread(target=read, name="scorecast-stream-reader", daemon=True).start()
    try:
        while True:
            try:
                item = box.get(timeout=idle_s)
            except queue.Empty:
                raise IdleStream(idle_s) from None
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        closed.set()


class Slots:
    """A counting semaphore whose waiters are served in arrival order, each for a bounded time.

    ``threading.Semaphore`` wakes an arbitrary waiter and lets a newcomer overtake those
    waiting; here a freed slot goes to the longest-waiting call, so no call waits longer than
    the queue ahead of it takes.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._free = slots
        self._lock = threading.Lock()
        self._waiters: collections.deque[threading.Event] = collections.deque()

    def try_acquire(self) -> bool:
        """A slot at once, if one is free and nobody waits for one."""
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            return False

    def queued(self) -> int:
        """Calls waiting for a slot now."""
        return len(self._waiters)

    def held(self) -> int:
        """Slots held now."""
        return self.slots - self._free

    def enqueue(self) -> threading.Event:
        """A place in the queue (set once a slot is handed to it); ``wait`` it, then ``leave`` it."""
        turn = threading.Event()
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                turn.set()
            else:
                self._waiters.append(turn)
        return turn

    def leave(self, turn: threading.Event) -> bool:
        """Give up a place after waiting for it: True if a slot was handed over meanwhile (then held)."""
        with self._lock:
            if turn.is_set():
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        """Free a slot: to the longest-waiting call, if any."""
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._free += 1


class QueueFull(ScorecastError):
    """A call waited for a slot for as long as it may, or found the queue full."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED


ADMITTED_OIP_METHODS = frozenset(f"/{OIP_SERVICE_NAME}/{m}" for m in ("ModelInfer", "ModelStreamInfer"))
"""Open Inference Protocol calls that score: they take slots like scorecast.v1 calls (the same
threads do the work); its liveness, readiness and metadata calls stay free, like health checks."""


class AdmissionInterceptor(grpc.ServerInterceptor):
    """Slots for scorecast.v1 calls and streams, a bounded queue for calls that find none; an
    idle timeout on request streams."""

    def __init__(
        self,
        max_calls: int,
        max_streams: int,
        idle_timeout_s: float,
        max_queued: int = 0,
        max_wait_s: float = 0.0,
        waited: Callable[[float], None] | None = None,
        max_queued_bytes: int = 0,
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self._calls = Slots(max_calls)
        self._streams = threading.BoundedSemaphore(max_streams)
        self.max_calls, self.max_streams = max_calls, max_streams
        self.max_queued, self.max_wait_s = max_queued, max_wait_s
        self._waited = waited  # seconds each queued call waited (a metric)
        self.max_queued_bytes = max_queued_bytes
        self._queued_bytes = 0  # what the waiting calls' requests hold
        self._bytes_lock = threading.Lock()
        self._unary: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        """Each unary method's handler and its admitted form (a method's handler never changes)."""

    def queued(self) -> int:
        """Calls waiting for a slot now."""
        return self._calls.queued()

    def serving(self) -> int:
        """Calls holding a slot now."""
        return self._calls.held()

    def _call_slot(self, context: grpc.ServicerContext, size: int = 0) -> None:
        """Take a call slot, waiting in the queue for one if need be; QueueFull (or
        DEADLINE_EXCEEDED, the caller's deadline coming first) if none comes in time.
        ``size``: the bytes of the call's request, held while it waits (``max_queued_bytes``).

        Taken in the handler's thread, not when the call is dispatched: a call cancelled before
        its handler runs never reaches it, and so never holds a slot it cannot give back.
        """
        if self._calls.try_acquire():
            return
        if self._calls.queued() >= self.max_queued:
            raise QueueFull(
                f"the server is serving its limit of {self.max_calls} calls (setting max_workers) and {self.max_queued}"
                " more wait for a slot (setting max_queued_calls); try again later"
            )
        with self._bytes_lock:
            if self._queued_bytes + size > self.max_queued_bytes:
                raise QueueFull(
                    f"the server is serving its limit of {self.max_calls} calls (setting max_workers) and the waiting"
                    f" calls hold {self._queued_bytes} bytes of requests; {size} more would pass max_queued_bytes"
                    f" ({self.max_queued_bytes}); try again later"
                )
            self._queued_bytes += size
        start = time.monotonic()
        try:
            turn = self._calls.enqueue()
            remaining = context.time_remaining()
            timeout = self.max_wait_s if remaining is None else min(self.max_wait_s, max(remaining, 0.0))
            got = turn.wait(timeout) or self._calls.leave(turn)
        finally:
            with self._bytes_lock:
                self._queued_bytes -= size
        if self._waited is not None:
            self._waited(time.monotonic() - start)
        if got:
            return
        if remaining is not None and remaining <= self.max_wait_s:
            raise _DeadlineWhileQueued(remaining)
        raise QueueFull(
            f"no call slot came free within {self.max_wait_s * 1e3:g} ms (setting max_queue_wait_ms; "
            f"{self.max_calls} calls at once, setting max_workers); try again later"
        )

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None or not (details.method.startswith(f"/{SERVICE_NAME}/") or details.method in ADMITTED_OIP_METHODS):
            return handler
        if handler.request_streaming and handler.response_streaming:
            # a stream slot at once or a refusal, here, before a thread is taken
            if not self._streams.acquire(blocking=False):
                message = f"the server has its limit of {self.max_streams} streams open (setting max_streams); try again later"
                return abort_handler(handler, grpc.StatusCode.RESOURCE_EXHAUSTED, message)
            return self._stream(handler)
        if handler.request_streaming or handler.response_streaming:
            raise TypeError(f"{details.method}: admission handles unary calls and bidirectional streams only")
        wrapped = self._unary.get(details.method)
        if wrapped is None or wrapped[0] is not handler:  # built once per method, not per call
            wrapped = self._unary[details.method] = (handler, self._admitted(handler))
        return wrapped[1]

    def _admitted(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        unary = handler.unary_unary

        def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                # bytes: the request of a call an inner interceptor refuses (it is never parsed)
                self._call_slot(context, len(request) if isinstance(request, bytes) else request.ByteSize())
            except ScorecastError as exc:
                context.abort(exc.status, str(exc))
            try:
                return unary(request, context)
            finally:
                self._calls.release()

        return grpc.unary_unary_rpc_method_handler(unary_unary, handler.request_deserializer, handler.response_serializer)

    def _stream(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        behavior = handler.stream_stream

        def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            # each slot is freed once, by whichever comes first: the call's end (its callback,
            # even while the handler is suspended) or the handler's end
            release_stream = _once(self._streams.release)
            if not context.add_callback(release_stream):
                release_stream()
            try:
                try:
                    self._call_slot(context)
                except ScorecastError as exc:
                    context.abort(exc.status, str(exc))
                release_call = _once(self._calls.release)
                if not context.add_callback(release_call):
                    release_call()
                try:
                    yield from behavior(idle_limited(requests, self.idle_timeout_s), context)
                finally:
                    release_call()
            finally:
                release_stream()

        return grpc.stream_stream_rpc_method_handler(stream_stream, handler.request_deserializer, handler.response_serializer)


def _once(release: Callable[[], None]) -> Callable[[], None]:
    done = threading.Lock()

    def once() -> None:
        if done.acquire(blocking=False):
            release()

    return once


class _DeadlineWhileQueued(ScorecastError):
    status = grpc.StatusCode.DEADLINE_EXCEEDED

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the call's deadline ({seconds * 1e3:.0f} ms) passed while it waited for a slot")
