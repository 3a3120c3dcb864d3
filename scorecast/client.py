"""Python client of the scorecast.v1 gRPC API.

    with ScorecastClient("localhost:50051") as client:
        for batch in client.score(chunks, ["rfm", "affinity"], as_of=datetime(2026, 1, 1, tzinfo=UTC)):
            ...

Chunks are ``{table name: pa.Table}``; scores come back as ``pa.RecordBatch`` per chunk, in
order. The request stream is produced lazily, so memory holds a few chunks at most. Request
options are keywords named as in ``scorecast.options`` (``horizon_days=``, ``exclude_bought=``
…); ``account=`` names the account, per client (its default) or per call.

``target`` may name several servers (``"a:50051,b:50051"`` or a list): a call that finds its
server unavailable moves to the next, and a ``score`` stream that drops goes on there (or on
the same server once it is back; see ``scorecast.retry``).

Against a secured server: ``ScorecastClient(target, token=..., tls_ca="ca.pem")`` (add
``tls_cert``/``tls_key`` when the server asks for client certificates; ``tls=True`` alone
uses the system's root certificates).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import pyarrow as pa

from scorecast.accounts import DEFAULT_ACCOUNT
from scorecast.options import score_options
from scorecast.proto import DEFAULT_MAX_MESSAGE_BYTES, pb, rpc
from scorecast.retry import CHANNEL_OPTIONS, FailoverStub, RetryPolicy, StreamEvent, Target, parse_targets, resilient_score, wait_any_ready

__all__ = ["ScorecastClient", "TopNResult", "encode_table", "header"]


COMPRESS_MIN_BYTES = 1 << 20
"""Tables from this size are sent LZ4-compressed: a third of the bytes to copy through
protobuf and gRPC on both sides, which costs more than compressing (benchmarks/behaviour.py);
below it, compression's per-buffer cost is a small request's latency."""
_LZ4 = pa.ipc.IpcWriteOptions(compression="lz4")


def encode_table(table: pa.Table, compress: bool | None = None) -> bytes:
    """A table as one Arrow IPC stream; LZ4-compressed if ``compress`` (None: from
    ``COMPRESS_MIN_BYTES``)."""
    if compress is None:
        compress = table.nbytes >= COMPRESS_MIN_BYTES
    if table.nbytes < COMPRESS_MIN_BYTES:
        # One record batch: a few contacts filtered out of a larger table arrive in as many
        # batches as it had, and the server pays per batch (and joins them again).
        table = table.combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_LZ4 if compress else None) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _decode(data: bytes) -> pa.RecordBatch:
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        table = reader.read_all()
    return table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema=table.schema)


def header(scores: Sequence[str], *, account: str = DEFAULT_ACCOUNT, **options: Any) -> pb.ScoreHeader:
    """A request header: ``options`` are the request options by name (``scorecast.options``;
    ``as_of`` a timezone-aware datetime, None: the server's now)."""
    return pb.ScoreHeader(scores=list(scores), options=score_options(**options), account=account)


def _chunk(tables: Mapping[str, pa.Table]) -> pb.ContactChunk:
    return pb.ContactChunk(tables={name: encode_table(table) for name, table in tables.items()})


class _TokenInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call (over TLS or, behind a TLS proxy, plaintext)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return _CallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready, details.compression
        )

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, request_iterator: Any) -> Any:
        return continuation(self._with_token(details), request_iterator)

    def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, request_iterator: Any) -> Any:
        return continuation(self._with_token(details), request_iterator)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(
        self, method: str, timeout: float | None, metadata: Any, credentials: Any, wait_for_ready: Any, compression: Any
    ) -> None:
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


def _pem(path: str | Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


@dataclass(frozen=True)
class TopNResult:
    """A TopN answer: the rows (best first), how many contacts were scored and matched."""

    table: pa.Table
    scanned: int
    matched: int
    models: list[tuple[str, str]]


class ScorecastClient:
    """Channels to one or more scorecast servers with explicit message limits on our side too.

    ``token`` is sent as ``authorization: Bearer <token>``. TLS is used when any of ``tls``,
    ``tls_ca`` (PEM roots that signed the server's certificate; default: the system's) or
    ``tls_cert``/``tls_key`` (a client certificate, both or neither) is given. ``account``: the
    account of every call that names none.
    """

    def __init__(
        self,
        target: str | Sequence[str],
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        timeout: float | None = None,
        *,
        token: str | None = None,
        tls: bool = False,
        tls_ca: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        account: str = DEFAULT_ACCOUNT,
        retry: RetryPolicy | None = None,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if token is not None and not token.strip():
            raise ValueError("token is empty")
        options = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", max_message_bytes), *CHANNEL_OPTIONS]
        credentials = None
        if tls or tls_ca is not None or tls_cert is not None:
            credentials = grpc.ssl_channel_credentials(_pem(tls_ca), _pem(tls_key), _pem(tls_cert))
        self.targets = parse_targets(target)
        self.channels: list[grpc.Channel] = []
        targets = []
        for name in self.targets:
            channel = grpc.insecure_channel(name, options=options) if credentials is None else grpc.secure_channel(name, credentials, options=options)
            self.channels.append(channel)
            calls = channel if token is None else grpc.intercept_channel(channel, _TokenInterceptor(token.strip()))
            targets.append(Target(name, rpc.ScorecastStub(calls), channel))
        self.channel = self.channels[0]
        self.stub = FailoverStub(targets)
        self.timeout = timeout
        self.account = account
        self.retry = retry or RetryPolicy()

    def __enter__(self) -> ScorecastClient:
        return self

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]) -> None:
        self.close()

    def close(self) -> None:
        """Close the channels."""
        for channel in self.channels:
            channel.close()

    def _account(self, account: str | None) -> str:
        return self.account if account is None else account

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until a target's channel is connected, and use that target first (raises
        grpc.FutureTimeoutError when none is within ``timeout``)."""
        self.stub.use(wait_any_ready(self.channels, timeout))

    def list_models(self, *, account: str | None = None) -> list[pb.ModelInfo]:
        """Every score served, at its default version."""
        request = pb.ListModelsRequest(account=self._account(account))
        return list(self.stub.ListModels(request, timeout=self.timeout).models)

    def get_model(self, score: str, version: str = "", *, account: str | None = None) -> pb.ModelInfo:
        """One model's metadata and metrics."""
        request = pb.GetModelRequest(score=score, version=version, account=self._account(account))
        return self.stub.GetModel(request, timeout=self.timeout).model

    def score_batch(
        self,
        tables: Mapping[str, pa.Table],
        scores: Sequence[str],
        *,
        account: str | None = None,
        wait_for_ready: bool = False,
        **options: Any,
    ) -> pa.RecordBatch:
        """Score a small set of contacts in one call (the real-time path). ``wait_for_ready``: a
        target not (yet) listening, as during a restart, is waited for up to the client's timeout
        instead of failing UNAVAILABLE at once (then no failover: the current target is waited on)."""
        request = pb.ScoreBatchRequest(header=header(scores, account=self._account(account), **options), chunk=_chunk(tables))
        return _decode(self.stub.ScoreBatch(request, timeout=self.timeout, wait_for_ready=wait_for_ready).scores)

    def reload_models(self, *, account: str | None = None) -> pb.ReloadModelsResponse:
        """Ask the server to rescan its model repository now (needs the admin role when tokens are on)."""
        return self.stub.ReloadModels(pb.ReloadModelsRequest(account=self._account(account)), timeout=self.timeout)

    def score(
        self,
        chunks: Iterable[Mapping[str, pa.Table]],
        scores: Sequence[str],
        *,
        start: int = 0,
        start_contacts: int = 0,
        account: str | None = None,
        on_event: Callable[[StreamEvent], None] | None = None,
        on_models: Callable[[list[tuple[str, str]]], None] | None = None,
        **options: object,
    ) -> Iterator[pa.RecordBatch]:
        """Stream chunks of contacts; yields one scores batch per chunk, in order.

        A stream that drops is resumed on a new one (the next target, if several), re-sending
        the unanswered chunks (``scorecast.retry``, under ``self.retry``). ``start`` and
        ``start_contacts``: the chunks and contacts of the job answered before ``chunks``' first
        (a job resumed from saved answers); ``on_event`` sees each answer and failed stream.
        """
        first = header(scores, account=self._account(account), **options)  # type: ignore[arg-type]
        answers = resilient_score(
            self.stub.rotation(), first, chunks, _chunk, _decode, self.retry,
            start=start, start_contacts=start_contacts, timeout=self.timeout, on_event=on_event, on_models=on_models,
        )
        for _, batch in answers:
            yield batch

    def top(
        self,
        by: str,
        n: int,
        where: Sequence[str] = (),
        *,
        chunks: Iterable[Mapping[str, pa.Table]] | None = None,
        base_path: str | None = None,
        chunk_contacts: int = 0,
        account: str | None = None,
        **options: Any,
    ) -> TopNResult:
        """The ``n`` contacts with the highest ``by`` among those matching ``where`` (TopN).

        Give either ``chunks`` (streamed, as in ``score``) or ``base_path``, a base folder on the
        server (under its ``base_roots``). ``options`` are ``header``'s (as_of, product_groups …).
        """
        if (chunks is None) == (base_path is None):
            raise ValueError("give either chunks or base_path")
        first = pb.TopNHeader(
            by=by,
            n=n,
            where=list(where),
            options=score_options(**options),
            base_path=base_path or "",
            chunk_contacts=chunk_contacts,
            account=self._account(account),
        )

        def requests() -> Iterator[pb.TopNRequest]:
            yield pb.TopNRequest(header=first)
            for tables in chunks or ():
                yield pb.TopNRequest(chunk=_chunk(tables))

        parts, scanned, matched, models = [], 0, 0, []
        for i, response in enumerate(self.stub.TopN(requests(), timeout=self.timeout)):
            if i == 0:
                scanned, matched = response.scanned, response.matched
                models = [(m.score, m.version) for m in response.models]
            with pa.ipc.open_stream(pa.py_buffer(response.contacts)) as reader:
                parts.append(reader.read_all())
        table = pa.concat_tables(parts) if parts else pa.table({})
        return TopNResult(table=table, scanned=scanned, matched=matched, models=models)
