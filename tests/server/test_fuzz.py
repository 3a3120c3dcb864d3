"""Fuzz the running server with malformed and hostile requests (issue "Run it in production", 1).

The cases come from ``tests/support/fuzz.py`` (``benchmarks/fuzz.py`` runs 10,000+ of them
against a subprocess); here a few hundred run in process, and the regressions they found stay.
"""

from __future__ import annotations

import random

import grpc
import numpy as np
import pyarrow as pa

from ..support.fuzz import (
    AS_OF_US,
    MAX_DECODED_BYTES_PER_CHUNK,
    MAX_EVENT_ROWS_PER_CHUNK,
    MAX_ROWS_PER_CHUNK,
    MAX_ROWS_PER_REQUEST,
    OK,
    encode,
    generate_cases,
    run_case,
    valid_case,
    vm_rss_bytes,
)


# ----------------------------------------------------------------------------------------------
# the test


def test_fuzz_server(repository) -> None:
    """~300 hostile cases against an in-process server: right status, message naming the field,
    still serving after, and memory back near where a warm-up run left it."""
    import gc

    from scorecast.proto import rpc
    from scorecast.server.app import start_server
    from scorecast.server.config import ServerSettings

    settings = ServerSettings(port=0, max_rows_per_chunk=MAX_ROWS_PER_CHUNK, max_rows_per_request=MAX_ROWS_PER_REQUEST,
                              max_decoded_bytes_per_chunk=MAX_DECODED_BYTES_PER_CHUNK, max_event_rows_per_chunk=MAX_EVENT_ROWS_PER_CHUNK)
    running = start_server(settings, repository)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}", options=[("grpc.max_receive_message_length", -1),
                                                                       ("grpc.max_send_message_length", -1)]) as channel:
            stub = rpc.ScorecastStub(channel)
            for case in generate_cases(seed=1, n=64):  # warm-up: every path, allocator pools, caches
                run_case(stub, case)
            gc.collect()
            baseline = vm_rss_bytes()
            problems = []
            for i, case in enumerate(generate_cases(seed=0, n=320)):
                outcome = run_case(stub, case)
                if outcome.problem:
                    problems.append(f"#{i} {case.category}: {case.description}: {outcome.problem}")
            assert not problems, "\n".join(problems)
            good = run_case(stub, valid_case(random.Random(0)))
            assert good.code == OK and good.problem is None, good.problem
            gc.collect()
            after = vm_rss_bytes()
            # The requests are small (the largest is ~15 MB of huge strings), so a leak of even a
            # few KB per case would show over 320 cases only as growth proportional to the run; a
            # run that only reuses what warm-up allocated (glibc arenas per gRPC thread, Arrow's
            # pool) stays near the baseline. 1.5x + 50 MB allows for arena growth and fragmentation
            # from the huge-string cases without hiding a per-request leak of the request's size.
            assert after < 1.5 * baseline + 50 * 2**20, f"RSS {baseline / 2**20:.0f} MB after warm-up, {after / 2**20:.0f} MB after"
    finally:
        running.stop(0)


# ----------------------------------------------------------------------------------------------
# regressions the fuzzing found (the kernel ones are in tests/kernels/test_arrow.py)


def test_totals_beyond_float32_score_null(repository) -> None:
    """A total amount beyond float32 is an inf feature and an inf output: returned as null. It
    was INTERNAL (numpy's overflow warning, an error under pytest) or inf in production."""
    from scorecast.options import ScoreSpec
    from scorecast.server.pipeline import ScoringPipeline

    orders = pa.table(
        {
            "contact_id": pa.array([1, 2], pa.int64()),
            "ts": pa.array([AS_OF_US - 1] * 2, pa.timestamp("us", tz="UTC")),
            "amount": pa.array([1e300, 1.0]),
        }
    )
    batch = ScoringPipeline(repository, ScoreSpec(scores=("spend",), as_of_us=AS_OF_US)).score({"orders": orders})
    assert batch.column("spend.value").to_pylist() == [None, 11.0]


def test_invalid_utf8_is_a_malformed_payload() -> None:
    """A stream whose string bytes are not UTF-8 (a flipped bit) is refused when decoded; it was
    INTERNAL (UnicodeDecodeError in the kernels). Full validation also catches bad offsets."""
    import pytest

    from scorecast.server.codec import decode_tables
    from scorecast.server.limits import DecodeBudget
    from scorecast.server.errors import MalformedPayload

    ids = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(np.array([0, 1], np.int32).tobytes()), pa.py_buffer(b"\xf5")])
    data = encode(pa.table({"contact_id": ids, "ts": pa.array([0], pa.timestamp("us", tz="UTC"))}))
    with pytest.raises(MalformedPayload, match=r"^chunk\.tables\['orders'\]: not a readable Arrow IPC stream"):
        decode_tables({"orders": data}, DecodeBudget(1 << 30, 10**8))
    # The same in a column name: pyarrow raised UnicodeDecodeError reading the schema.
    bad_name = encode(pa.table({"contact_id": [1]})).replace(b"contact_id", b"contact\xf5id")
    with pytest.raises(MalformedPayload, match=r"^chunk\.tables\['orders'\]: not a readable Arrow IPC stream"):
        decode_tables({"orders": bad_name}, DecodeBudget(1 << 30, 10**8))


def test_names_too_long_to_echo_are_refused() -> None:
    """A 10,000-char score name came back in NOT_FOUND's message, over gRPC's 8 KiB limit on
    status details: the caller saw RESOURCE_EXHAUSTED "Stream removed" instead."""
    import pytest

    from scorecast.server.codec import decode_tables
    from scorecast.server.limits import DecodeBudget
    from scorecast.server.errors import InvalidArgument
    from scorecast.options import ScoreSpec
    from scorecast.server.pipeline import ScoringPipeline

    for spec in (ScoreSpec(scores=("x" * 10_000,), as_of_us=0), ScoreSpec(scores=("spend",), as_of_us=0, product_groups=("g" * 10_000,))):
        with pytest.raises(InvalidArgument, match=r"at most 256 chars") as info:
            ScoringPipeline(None, spec)  # refused before the repository is asked
        assert len(str(info.value)) < 200
    with pytest.raises(InvalidArgument) as info:
        decode_tables({"t" * 100_000: b""}, DecodeBudget(1 << 30, 10**8))
    assert len(str(info.value)) < 400
