"""Admission: how many scorecast.v1 calls and streams run at once, and how long a stream may idle.

Every scorecast.v1 call takes a slot (``max_workers``), a Score or TopN stream a stream slot
too (``max_streams``, fewer than ``max_workers``, so streams always leave threads to unary
calls); a call that finds none is RESOURCE_EXHAUSTED at once instead of queueing behind them.
The server's thread pool has ``RESERVED_THREADS`` more threads than slots, and health and
reflection take no slot, so they answer while every scoring slot is held. A stream whose
caller sends no message for ``idle_timeout_s`` is ended with DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from scorecast.proto import OIP_SERVICE_NAME, SERVICE_NAME

from .errors import ScorecastError
from .security import abort_handler

__all__ = ["RESERVED_THREADS", "AdmissionInterceptor", "IdleStream", "idle_limited"]

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


ADMITTED_OIP_METHODS = frozenset(f"/{OIP_SERVICE_NAME}/{m}" for m in ("ModelInfer", "ModelStreamInfer"))
"""Open Inference Protocol calls that score: they take slots like scorecast.v1 calls (the same
threads do the work); its liveness, readiness and metadata calls stay free, like health checks."""


class AdmissionInterceptor(grpc.ServerInterceptor):
    """Slots for scorecast.v1 calls and streams; an idle timeout on request streams."""

    def __init__(self, max_calls: int, max_streams: int, idle_timeout_s: float) -> None:
        self.idle_timeout_s = idle_timeout_s
        self._calls = threading.BoundedSemaphore(max_calls)
        self._streams = threading.BoundedSemaphore(max_streams)
        self.max_calls, self.max_streams = max_calls, max_streams

    def _admit(self, streaming: bool) -> Callable[[], None] | str:
        """A release function for the slots taken, or why none was free."""
        if not self._calls.acquire(blocking=False):
            return f"the server is serving its limit of {self.max_calls} calls (setting max_workers); try again later"
        if streaming and not self._streams.acquire(blocking=False):
            self._calls.release()
            return f"the server has its limit of {self.max_streams} streams open (setting max_streams); try again later"
        once = threading.Lock()  # release runs twice (the callback and the handler's end): free once

        def release() -> None:
            if not once.acquire(blocking=False):
                return
            self._calls.release()
            if streaming:
                self._streams.release()

        return release

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None or not (details.method.startswith(f"/{SERVICE_NAME}/") or details.method in ADMITTED_OIP_METHODS):
            return handler
        streaming = handler.request_streaming
        admitted = self._admit(streaming)
        if isinstance(admitted, str):
            return abort_handler(handler, grpc.StatusCode.RESOURCE_EXHAUSTED, admitted)
        release = admitted
        if handler.request_streaming and handler.response_streaming:
            behavior = handler.stream_stream

            def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
                if not context.add_callback(release):
                    release()
                try:
                    yield from behavior(idle_limited(requests, self.idle_timeout_s), context)
                finally:
                    release()

            return grpc.stream_stream_rpc_method_handler(stream_stream, handler.request_deserializer, handler.response_serializer)
        if handler.request_streaming or handler.response_streaming:
            raise TypeError(f"{details.method}: admission handles unary calls and bidirectional streams only")
        unary = handler.unary_unary

        def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
            if not context.add_callback(release):
                release()
            try:
                return unary(request, context)
            finally:
                release()

        return grpc.unary_unary_rpc_method_handler(unary_unary, handler.request_deserializer, handler.response_serializer)
