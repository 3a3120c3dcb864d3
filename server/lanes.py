"""Chunks scored side by side, results in chunk order: for ``rescore`` and the ``Score`` stream.

A chunk's kernels and Python run mostly on one core (the serial parts between numba's parallel
loops), so a second chunk scored at once fills the other: the 300k-contact behaviour base on 2
cores took 0.60 s one chunk at a time, 0.44 s two at a time (1.2 and 1.8 cores busy).
"""

from __future__ import annotations

import contextvars
import functools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import numba

__all__ = ["SCORING_THREADS", "in_lanes", "scoring_threads"]

SCORING_THREADS = 2

_T = TypeVar("_T")
_R = TypeVar("_R")


def scoring_threads() -> int:
    """SCORING_THREADS, or 1 under numba's workqueue layer (it cannot run kernels from two
    threads at once) or before any layer started."""
    try:
        layer = numba.threading_layer()
    except ValueError:
        return 1
    return 1 if layer == "workqueue" else SCORING_THREADS


def in_lanes(items: Iterator[_T], work: Callable[[_T], _R], lanes: int, behind: int) -> Iterator[_R]:
    """``work(item)`` for every item, up to ``lanes`` at once on as many threads; results in the
    items' order.

    An item is taken only when a lane is free and at most ``behind`` items wait behind the
    first one not yet yielded (a slow chunk holds back that many, no more). Items are taken on a
    thread of their own too, so a finished result is yielded while the next item is awaited (a
    stream's caller may wait for it before sending more). The first error, from ``items`` or
    from any ``work``, is raised as soon as it happens; no item is taken or started after it,
    and what is in flight then is dropped.
    """
    if lanes < 1 or behind < lanes - 1:
        raise ValueError(f"lanes must be >= 1 and behind >= lanes - 1, got lanes={lanes}, behind={behind}")
    state = _Lanes[_R](lanes, behind, contextvars.copy_context())
    state.start(items, work)
    try:
        while True:
            job = state.next_done()
            if job is None:
                return
            yield job.result()
    finally:
        state.stop()


class _Job(Generic[_R]):
    """One item's work, run by a lane."""

    def __init__(self, run: Callable[[], _R]) -> None:
        self.finished = False
        self.error: BaseException | None = None
        self._run = run
        self._result: _R | None = None

    def run(self) -> None:
        try:
            self._result = self._run()
        except BaseException as exc:  # handed to the consumer by result()
            self.error = exc
        finally:
            self.finished = True

    def result(self) -> _R:
        if self.error is not None:
            raise self.error
        return self._result  # type: ignore[return-value]


class _Lanes(Generic[_R]):
    """The jobs taken and not yet yielded, in order, under one condition; items taken by one
    job of ``_WORKERS``, each item's work another."""

    def __init__(self, lanes: int, behind: int, context: contextvars.Context) -> None:
        self.lanes, self.behind = lanes, behind
        self.context = context  # the caller's (its request id in log lines)
        self.jobs: deque[_Job[_R]] = deque()
        self.running = 0
        self.ended = False  # items exhausted
        self.error: BaseException | None = None  # from items
        self.stopped = False  # the consumer is gone
        self.changed = threading.Condition()

    def start(self, items: Iterator[_T], work: Callable[[_T], _R]) -> None:
        _WORKERS.submit(lambda: self.context.copy().run(self._take, items, work))

    def _room(self) -> bool:
        return self.stopped or (self.running < self.lanes and len(self.jobs) <= self.behind)

    def _take(self, items: Iterator[_T], work: Callable[[_T], _R]) -> None:
        """The next item whenever there is room for it."""
        while True:
            with self.changed:
                self.changed.wait_for(self._room)
                if self.stopped:
                    return
            try:
                item = next(items)
            except StopIteration:
                return self._end(None)
            except BaseException as exc:
                return self._end(exc)
            with self.changed:
                if self.stopped:
                    return
                job = _Job(functools.partial(work, item))
                self.running += 1
                self.jobs.append(job)
            _WORKERS.submit(lambda job=job: self.context.copy().run(self._run, job))

    def _run(self, job: _Job[_R]) -> None:
        if not self.stopped:  # after an error, the jobs not started are dropped
            job.run()
        with self.changed:
            self.running -= 1
            if job.error is not None:
                # the run is over: take and start nothing more, even before the consumer sees it
                # (the lane this error freed would otherwise take the next item at once)
                self.stopped = True
            self.changed.notify_all()

    def _end(self, error: BaseException | None) -> None:
        with self.changed:
            self.ended, self.error = True, error
            self.changed.notify_all()

    def next_done(self) -> _Job[_R] | None:
        """The first job once it is finished (it may hold an error), None after the last; the
        first error anywhere at once."""
        with self.changed:
            while True:
                failed = next((job for job in self.jobs if job.finished and job.error is not None), None)
                if failed is not None:
                    return failed
                if self.jobs and self.jobs[0].finished:
                    job = self.jobs.popleft()
                    self.changed.notify_all()
                    return job
                if self.ended and self.error is not None:
                    raise self.error
                if self.ended and not self.jobs:
                    return None
                self.changed.wait()

    def stop(self) -> None:
        """The consumer is done: no more items taken, jobs not started dropped."""
        with self.changed:
            self.stopped = True
            self.changed.notify_all()


class _Workers:
    """Daemon threads running what is submitted, reused from run to run, one more started
    whenever none is idle (so as many as the most jobs ever at once).

    Reused, not a thread per chunk or per run: Arrow's allocator (mimalloc) keeps per-thread
    heaps, and with fresh threads a server's peak RSS over a 300k-contact stream rose from 748
    to 1,016 MiB (0.9 to 1.05 s). Daemons, so that Ctrl-C or SIGTERM ends a process at once
    instead of waiting for a chunk in flight.
    """

    def __init__(self) -> None:
        self._todo: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], object]) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                threading.Thread(target=self._loop, name="scorecast-lane", daemon=True).start()
        self._todo.put(job)

    def _loop(self) -> None:
        while True:
            self._todo.get()()
            with self._lock:
                self._idle += 1


_WORKERS = _Workers()
