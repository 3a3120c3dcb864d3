"""``in_lanes``: work side by side, results in order, bounded, errors at once, no wait on the next item."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from scorecast.server.lanes import in_lanes

WAIT_S = 10  # a bound for events that should come at once; reaching it is a failure


def test_results_keep_item_order_with_at_most_lanes_running() -> None:
    """Items that finish out of order come back in order; never more than ``lanes`` run at once."""
    running, most = 0, 0
    lock = threading.Lock()

    def work(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.002 * ((7 * i) % 5))  # later items often finish first
        with lock:
            running -= 1
        return i * i

    assert list(in_lanes(iter(range(40)), work, lanes=3, behind=5)) == [i * i for i in range(40)]
    assert most == 3


def test_a_result_is_yielded_while_the_next_item_is_awaited() -> None:
    """A caller that sends the next item only after the previous result (a ping-pong stream)
    gets its results: taking the next item does not hold back a finished one."""
    answered = threading.Event()

    def items() -> Iterator[int]:
        yield 1
        assert answered.wait(WAIT_S), "the first result was held back until the next item came"
        yield 2

    results = []
    for result in in_lanes(items(), lambda i: i * 10, lanes=2, behind=1):
        results.append(result)
        answered.set()
    assert results == [10, 20]


def test_a_slow_item_holds_back_only_behind_more() -> None:
    """While the first item's work waits, ``behind`` more items are taken, no more."""
    release = threading.Event()
    took = threading.Condition()
    taken: list[int] = []

    def items() -> Iterator[int]:
        for i in range(10):
            with took:
                taken.append(i)
                took.notify_all()
            yield i

    def work(i: int) -> int:
        if i == 0:
            assert release.wait(WAIT_S)
        return i

    results = in_lanes(items(), work, lanes=2, behind=3)
    consumer = threading.Thread(target=lambda: taken.append(sum(results) * 1000))
    consumer.start()
    with took:
        assert took.wait_for(lambda: len(taken) >= 4, WAIT_S)
    time.sleep(0.2)  # a quiet window in which a wrongly taken fifth item would show up
    assert taken == [0, 1, 2, 3]
    release.set()
    consumer.join(WAIT_S)
    assert taken[-1] == sum(range(10)) * 1000


def test_an_error_in_work_is_raised_before_a_slow_first_item_finishes() -> None:
    """A failed item ends the run at once, even while an item before it is still running."""
    release = threading.Event()

    def work(i: int) -> int:
        if i == 0:
            release.wait(WAIT_S)
        if i == 1:
            raise ValueError("item 1 is bad")
        return i

    with pytest.raises(ValueError, match="item 1 is bad"):
        list(in_lanes(iter(range(5)), work, lanes=2, behind=2))
    assert not release.is_set()  # raised while item 0 still waited
    release.set()


def test_an_error_from_the_items_is_raised_after_the_results_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise KeyError("message 3")

    got: list[int] = []
    with pytest.raises(KeyError, match="message 3"):
        for result in in_lanes(items(), lambda i: i, lanes=1, behind=0):
            got.append(result)
    assert got == [1, 2]


def test_a_consumer_that_stops_stops_the_taking() -> None:
    """Closing the results early takes no more items (a stream whose caller went away)."""
    taken: list[int] = []

    def items() -> Iterator[int]:
        for i in range(1000):
            taken.append(i)
            yield i

    results = in_lanes(items(), lambda i: i, lanes=2, behind=1)
    assert next(results) == 0
    results.close()
    time.sleep(0.2)
    assert len(taken) <= 4


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="lanes=2, behind=0"):
        list(in_lanes(iter([]), lambda i: i, lanes=2, behind=0))
