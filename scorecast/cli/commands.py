"""The ``scorecast`` command line: simulate, simulate-b2b, train, serve, score, rescore, top, report, demo.

Every command prints ``--help``, shows progress on long work, and exits non-zero with a
one-line reason on bad input. Heavy modules are imported inside each command so ``--help``
stays instant.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from scorecast.accounts import DEFAULT_ACCOUNT, check_account_name
from scorecast.options import add_option_flags, option_values, parse_as_of

__all__ = ["main", "parse_as_of"]

DATA_HELP = (
    "base folder (orders.parquet, contacts.parquet, ...) or postgresql://user:password@host:port/db?schema=S "
    "(the base's tables in schema S; prefer PGPASSWORD to a password in the URL: flags show in ps)"
)
OUT_HELP = "output Parquet file, or postgresql://...?schema=S&table=T (table T swapped in whole; default table scores); written atomically"

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, RuntimeError)
"""Errors printed as one line (with DiskFull, scorecast.atomic's full disk)."""


def _scores(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"no score named in {text!r}")
    return names


def _source(text: str):  # noqa: ANN202 (Path | str; sources imported lazily)
    from scorecast.sources import source

    try:
        return source(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _groups(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _account(text: str) -> str:
    if text == DEFAULT_ACCOUNT:  # argparse passes the default through here too
        return text
    try:
        return check_account_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_simulate(args: argparse.Namespace) -> None:
    from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base

    start = time.perf_counter()
    if args.accounts:
        from scorecast.training.simulate.accounts import simulate_accounts

        config = SimulationConfig(seed=args.seed, id_type=args.id_type)
        sizes = simulate_accounts(args.accounts, args.contacts, args.out, config, overwrite=args.overwrite)
        ordered = sorted(sizes.values())
        print(f"simulated {len(sizes)} accounts into {args.out}/<account>/ in {time.perf_counter() - start:.1f}s: "
              f"{sum(ordered):,} contacts, median {ordered[len(ordered) // 2]:,}, largest {ordered[-1]:,}")
        return
    base = simulate_base(SimulationConfig(n_contacts=args.contacts, seed=args.seed, id_type=args.id_type))
    write_base(base, args.out, progress=True, overwrite=args.overwrite)
    print(f"simulated {args.contacts:,} contacts, {base.orders.num_rows:,} orders into {args.out} in {time.perf_counter() - start:.1f}s")


def cmd_simulate_b2b(args: argparse.Namespace) -> None:
    from scorecast.training.simulate.b2b import B2BConfig, simulate_b2b, write_b2b

    base = simulate_b2b(B2BConfig(n_contacts=args.contacts, seed=args.seed))
    write_b2b(base, args.out, progress=True, overwrite=args.overwrite)
    meta = base.metadata()
    print(f"simulated {args.contacts:,} B2B leads ({meta['conversion_rate']:.1%} convert, Bayes-optimal AUC {meta['bayes_auc']:.3f}) into {args.out}")


def cmd_report(args: argparse.Namespace) -> None:
    from scorecast.training.report import write_report

    headlines = write_report(args.models, args.out, score=args.score, version=args.version)
    for score, headline in headlines.items():
        print(f"{score:<16} {headline}")
    print(f"wrote {args.out}")


def cmd_lead_rules(args: argparse.Namespace) -> None:
    from scorecast.training.lead.training import replace_rules

    print(f"wrote {replace_rules(args.models, args.rules, args.version)}")


def _tiers(text: str) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two scores LOW,HIGH, e.g. 34,67; got {text!r}") from None
    return low, high


def cmd_cdnow(args: argparse.Namespace) -> None:
    from scorecast.training.simulate.cdnow import write_cdnow_base

    write_cdnow_base(args.out, overwrite=args.overwrite)
    print(f"wrote the CDNOW sample (2,357 customers, 6,919 orders, 1997-01-01..1998-06-30) into {args.out}")


def cmd_import(args: argparse.Namespace) -> None:
    from scorecast.training.simulate.hillstrom import AS_OF, write_hillstrom_base

    counts = write_hillstrom_base(args.file, args.out, overwrite=args.overwrite)
    print(f"wrote the Hillstrom campaign into {args.out} (as of {AS_OF.date()}): " + ", ".join(f"{n} {k}" for k, n in counts.items()))


def cmd_train(args: argparse.Namespace) -> None:
    from scorecast.sources import local_base
    from scorecast.training.train import train

    with local_base(args.data) as data:
        written = _train(train, data, args)
    for path in written:
        print(f"wrote {path}")


def _train(train: Callable[..., list[Path]], data: Path, args: argparse.Namespace) -> list[Path]:
    from scorecast.accounts import account_root

    return train(
        data,
        account_root(args.out, args.account),
        scores=args.scores,
        as_of=args.as_of,
        progress=True,
        lead_rules=args.lead_rules,
        tier_thresholds=args.lead_tiers,
        web_config=args.web_config,
        interest_k=args.interest_k,
        promo_outcome=args.promo_outcome,
        promo_window_days=args.promo_window,
    )


def _settings(args: argparse.Namespace):  # noqa: ANN202 (server type imported lazily)
    from scorecast.server.config import ServerSettings

    return ServerSettings.load(
        models=args.models,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        device=args.device,
        port_file=getattr(args, "port_file", None),
        max_workers=getattr(args, "max_workers", None),
        max_queued_calls=getattr(args, "max_queued_calls", None),
        max_queue_wait_ms=getattr(args, "max_queue_wait_ms", None),
        max_queued_bytes=getattr(args, "max_queued_bytes", None),
        batch_max_delay_ms=getattr(args, "batch_max_delay_ms", None),
        batch_max_rows=getattr(args, "batch_max_rows", None),
        intra_op_threads=args.intra_op_threads,
        tree_form=getattr(args, "tree_form", None),
        inter_op_threads=getattr(args, "inter_op_threads", None),
        ort_spinning=getattr(args, "ort_spinning", None),
        processes=getattr(args, "processes", None),
        tls_cert=getattr(args, "tls_cert", None),
        tls_key=getattr(args, "tls_key", None),
        tls_client_ca=getattr(args, "tls_client_ca", None),
        tokens_file=getattr(args, "tokens_file", None),
        admin_methods=getattr(args, "admin_methods", None),
        max_model_bytes=getattr(args, "max_model_bytes", None),
        reload_interval_s=getattr(args, "reload_interval", None),
        metrics_port=getattr(args, "metrics_port", None),
        log_format=getattr(args, "log_format", None),
        base_roots=tuple(args.base_roots) if getattr(args, "base_roots", None) else None,
        insecure=getattr(args, "insecure", None),
    )


def cmd_serve(args: argparse.Namespace) -> None:
    from scorecast.server.logs import configure
    from scorecast.server.processes import serve

    settings = _settings(args)
    configure(settings.log_format, logging.INFO if args.verbose else logging.WARNING)
    serve(settings)


def cmd_score(args: argparse.Namespace) -> None:
    import itertools

    import grpc
    from tqdm import tqdm

    from scorecast.as_of import default_as_of, warn_if_stale
    from scorecast.base import BaseChunks
    from scorecast.client import ScorecastClient
    from scorecast.postgres import is_postgres_url, redact
    from scorecast.resume import ResumeState, base_signature
    from scorecast.retry import RetriesExhausted, RetryPolicy, StreamEvent
    from scorecast.sources import describe, local_base, score_writer

    start = time.perf_counter()
    token = args.token if args.token is not None else os.environ.get("SCORECAST_TOKEN") or None
    security = {"token": token, "tls": args.tls, "tls_ca": args.tls_ca, "tls_cert": args.tls_cert, "tls_key": args.tls_key}
    options = option_values(args)
    folder = None if is_postgres_url(args.data) else Path(args.data)
    job = {
        "data": str(folder.resolve()) if folder is not None else redact(args.data),
        "base": base_signature(folder) if folder is not None and folder.is_dir() else [],
        "account": args.account,
        "chunk_contacts": args.chunk_contacts,
        **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in options.items()},
        "scores": args.scores,
    }
    # the answered chunks are kept beside a Parquet output; for a table, in the working folder
    kept = Path(args.out) if not is_postgres_url(args.out) else Path(f"scorecast-score-{hashlib.sha256(redact(args.out).encode()).hexdigest()[:12]}")
    state, note = ResumeState.open(kept, job, args.resume)
    if note:
        print(f"scorecast score: {note}", file=sys.stderr)
    retry = RetryPolicy(retries=args.retries)
    with ScorecastClient(args.server, retry=retry, account=args.account, **security) as client:  # type: ignore[arg-type]
        try:
            client.wait_ready(timeout=args.connect_timeout)
        except grpc.FutureTimeoutError:
            raise RuntimeError(f"no scorecast server answered at {args.server} within {args.connect_timeout}s") from None
        columns: dict[str, list[str]] = {"contacts": ["contact_id"]}
        for score in args.scores:
            for qualified in client.get_model(score, state.models.get(score, "")).input_columns:
                table, column = qualified.split(".", 1)
                columns.setdefault(table, []).append(column)
        with local_base(args.data, columns) as data:  # type: ignore[arg-type]
            chunks = BaseChunks(data, columns, chunk_contacts=args.chunk_contacts)
            # a resumed job keeps its reference time, even one that was "now"
            as_of = datetime.fromisoformat(state.as_of) if args.as_of is None and state.as_of else default_as_of(args.as_of, folder)
            options["as_of"] = as_of
            state.as_of = as_of.isoformat()
            warn_if_stale(args.scores, as_of, folder)
            progress = tqdm(total=chunks.n_contacts, unit="contact", unit_scale=True, desc="score", file=sys.stderr)

            def report(event: StreamEvent) -> None:
                if event.kind == "failed":
                    progress.write(
                        f"scorecast score: the stream to {event.target} failed ({event.error}); {event.answered} chunks "
                        f"({event.contacts:,} contacts) scored; retrying on {event.next_target} within {event.retry_in_s:.1f}s",
                        file=sys.stderr,
                    )

            try:
                with score_writer(args.out) as writer:
                    for batch in state.batches():
                        writer.write(batch)
                        progress.update(batch.num_rows)
                    answers = client.score(
                        itertools.islice(chunks, state.chunks, None), args.scores, start=state.chunks, start_contacts=state.contacts,
                        on_event=report, on_models=state.set_models, **{**options, "model_versions": state.models},
                    )
                    for batch in answers:
                        state.add(batch)
                        writer.write(batch)
                        progress.update(batch.num_rows)
            except RetriesExhausted as exc:
                raise RuntimeError(f"{exc}; they are kept in {state.folder}: run the same command with --resume to go on") from None
            finally:
                progress.close()  # before any error line
    state.finish()
    seconds = time.perf_counter() - start
    print(f"scored {writer.rows:,} contacts in {seconds:.1f}s ({writer.rows / seconds:,.0f} contacts/s) into {describe(args.out)}")


def cmd_rescore(args: argparse.Namespace) -> None:
    from scorecast.accounts import account_root
    from scorecast.as_of import default_as_of, warn_if_stale
    from scorecast.client import header
    from scorecast.options import spec_from_header
    from scorecast.postgres import is_postgres_url
    from scorecast.server.repository import ModelRepository
    from scorecast.server.rescore import base_columns, rescore
    from scorecast.server.runtime import SessionOptions
    from scorecast.sources import describe, local_base

    start = time.perf_counter()
    folder = None if is_postgres_url(args.data) else args.data  # a schema declares no as-of: now, unless given
    as_of = default_as_of(args.as_of, folder)
    warn_if_stale(args.scores, as_of, folder)
    spec = spec_from_header(header(args.scores, **{**option_values(args), "as_of": as_of}))  # the server's reading of it
    models = account_root(args.models, args.account)
    options = SessionOptions(device=args.device, intra_op_threads=args.intra_op_threads, tree_form=args.tree_form)
    if args.engine == "ray":
        from scorecast.server.rescore_ray import rescore_ray

        if is_postgres_url(args.out):
            raise ValueError("--engine ray writes a Parquet dataset folder; --out postgresql://... needs --engine local")
        with local_base(args.data) as data:
            result = rescore_ray(models, data, spec, args.out, args.chunk_contacts, options, args.ray_actors, progress=True, address=args.address)
    else:
        repository = ModelRepository.load(models, options)
        with local_base(args.data, base_columns(repository, spec)) as data:  # type: ignore[arg-type]
            result = rescore(repository, data, spec, args.out, chunk_contacts=args.chunk_contacts, progress=True)
    seconds = time.perf_counter() - start
    print(f"rescored {result.rows:,} contacts in {seconds:.1f}s ({result.rows / seconds:,.0f} contacts/s) into {describe(args.out)}")


def cmd_top(args: argparse.Namespace) -> None:
    import grpc
    import pyarrow as pa

    from scorecast.as_of import default_as_of, warn_if_stale
    from scorecast.atomic import AtomicParquetWriter
    from scorecast.base import BaseChunks
    from scorecast.client import ScorecastClient
    from scorecast.filters import CONTACTS, FEATURES, parse_filter
    from scorecast.kernels import required_columns

    if (args.data is None) == (args.base_path is None):
        raise ValueError("give either --data (a local base, streamed) or --base-path (a base folder on the server)")
    clauses = parse_filter(args.where)  # fails here, before any connection, naming the clause
    start = time.perf_counter()
    token = args.token if args.token is not None else os.environ.get("SCORECAST_TOKEN") or None
    security = {"token": token, "tls": args.tls, "tls_ca": args.tls_ca, "tls_cert": args.tls_cert, "tls_key": args.tls_key}
    local = args.data if args.data is not None else Path(args.base_path) if Path(args.base_path).is_dir() else None  # the server's path may be local too
    as_of = default_as_of(args.as_of, local)
    warn_if_stale(dict.fromkeys([args.by.split(".", 1)[0], *(c.namespace for c in clauses)]), as_of, local)
    options = {**option_values(args), "as_of": as_of}
    with ScorecastClient(args.server, **security, account=args.account) as client:  # type: ignore[arg-type]
        try:
            client.wait_ready(timeout=args.connect_timeout)
        except grpc.FutureTimeoutError:
            raise RuntimeError(f"no scorecast server answered at {args.server} within {args.connect_timeout}s") from None
        if args.data is not None:
            # Read only what the server needs: the models' inputs, the features' and the attributes the filter reads.
            scores = dict.fromkeys([args.by.split(".", 1)[0], *(c.namespace for c in clauses if c.namespace not in (CONTACTS, FEATURES))])
            qualified = {q for score in scores for q in client.get_model(score).input_columns}
            qualified |= required_columns(c.column.split(".", 1)[1] for c in clauses if c.namespace == FEATURES)
            columns: dict[str, list[str]] = {CONTACTS: [c.column.split(".", 1)[1] for c in clauses if c.namespace == CONTACTS]}
            for q in sorted(qualified):
                table, column = q.split(".", 1)
                columns.setdefault(table, []).append(column)
            chunks = BaseChunks(args.data, columns, chunk_contacts=args.chunk_contacts)
            result = client.top(args.by, args.n, args.where, chunks=chunks, **options)  # type: ignore[arg-type]
        else:
            result = client.top(args.by, args.n, args.where, base_path=args.base_path, chunk_contacts=args.chunk_contacts, **options)  # type: ignore[arg-type]
    with AtomicParquetWriter(args.out) as writer:
        table = result.table if result.table.num_columns else pa.table({"contact_id": pa.array([], pa.int64())})
        writer.write(table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema=table.schema))
    seconds = time.perf_counter() - start
    print(
        f"top {writer.rows:,} by {args.by} of {result.matched:,} matching contacts ({result.scanned:,} scored) "
        f"in {seconds:.1f}s into {args.out}"
    )


def cmd_demo(args: argparse.Namespace) -> None:
    from scorecast.cli.demo import run_demo

    run_demo(args.contacts, args.seed, args.workdir)


AS_OF_HELP = "reference time (default: the base's own as-of from its base.json, else now)"


def _add_account(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--account", type=_account, default=DEFAULT_ACCOUNT, help=f"{what} (default: the default account)")


def _add_score_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", type=_scores, required=True, help="comma-separated scores, e.g. rfm,affinity")
    p.add_argument("--out", type=_source, required=True, help=OUT_HELP)
    add_option_flags(p, AS_OF_HELP)
    p.add_argument("--chunk-contacts", type=int, default=50_000, help="contacts per chunk (default 50000)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="scorecast", description="Predictive scores for CRM and marketing platforms.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("simulate", cmd_simulate, "simulate a CRM base as Parquet tables, with its ground truth")
    p.add_argument("--contacts", type=int, default=100_000, help="number of contacts, over all accounts (default 100000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", type=Path, required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--id-type", choices=("int64", "string"), default="int64", help="contact_id type (default int64)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--accounts", type=int, default=0, help="N brand accounts, a base each in OUT/<account>/, sizes lognormal (most small)")

    p = command("cdnow", cmd_cdnow, "write the shipped CDNOW sample (Fader, Hardie & Lee 2005) as a base folder")
    p.add_argument("--out", type=Path, required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")

    p = command("import", cmd_import, "turn a public data set into a base folder: hillstrom (MineThatData e-mail campaign CSV)")
    p.add_argument("dataset", choices=("hillstrom",), help="the data set's format")
    p.add_argument("file", type=Path, help="the data set's file (Hillstrom: the CSV, plain or .gz)")
    p.add_argument("--out", type=Path, required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")

    p = command("train", cmd_train, "fit every model on a base; write ONNX files into a model repository")
    p.add_argument("--data", type=_source, required=True, help=DATA_HELP)
    p.add_argument("--out", type=Path, required=True, help="model repository folder")
    p.add_argument("--scores", type=_scores, default=None, help="comma-separated scores (default: all)")
    p.add_argument("--as-of", type=parse_as_of, default=None, help="reference time of the data (default: its last order)")
    p.add_argument("--lead-rules", type=Path, default=None, help="lead: rules configuration (JSON, see README) served beside the model")
    p.add_argument("--lead-tiers", type=_tiers, default=None, help="lead: tier cuts LOW,HIGH on the 1-99 score (default 34,67: thirds)")
    p.add_argument("--web-config", type=Path, default=None, help="web page points and categories (JSON; default: the bundled example)")
    p.add_argument("--interest-k", type=int, default=3, help="top keywords the interests score gives (default 3)")
    p.add_argument("--promo-outcome", choices=("order", "visit"), default="order", help="promo_appetence: uplift on an order (default) or a web visit")
    p.add_argument("--promo-window", type=int, default=30, help="promo_appetence: days after a campaign its outcome counts (default 30)")
    _add_account(p, "account to train for: its models go into OUT/ACCOUNT/")

    p = command("simulate-b2b", cmd_simulate_b2b, "simulate a B2B lead base (contacts, interactions, web_events) with its truth")
    p.add_argument("--contacts", type=int, default=20_000, help="number of leads (default 20000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", type=Path, required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")

    p = command("lead-rules", cmd_lead_rules, "write a new lead version with other rules (same scorecard, no refit)")
    p.add_argument("--models", type=Path, required=True, help="model repository folder")
    p.add_argument("--rules", type=Path, required=True, help="rules configuration (JSON, see README)")
    p.add_argument("--version", default=None, help="lead version to start from (default: the newest)")

    p = command("report", cmd_report, "write the models' validation report as one HTML page with charts (a section per score)")
    p.add_argument("--models", type=Path, required=True, help="model repository folder")
    p.add_argument("--score", default=None, help="one score to report on, e.g. lead (default: every score's newest version)")
    p.add_argument("--version", default=None, help="model version, with --score (default: the newest)")
    p.add_argument("--out", type=Path, required=True, help="output HTML file (written atomically)")

    device_help = "ONNX Runtime execution provider (default cpu, or SCORECAST_DEVICE)"
    tree_help = "tree ensembles as TreeEnsemble (native) or MatMul/Gather (gemm, runs on CUDA); auto: gemm on cuda"
    p = command("serve", cmd_serve, "serve the models of a repository over gRPC")
    p.add_argument("--models", type=Path, required=True, help="model repository folder")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 50051; 0 picks one)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help=device_help)
    p.add_argument("--port-file", type=Path, default=None, help="write the bound port there once ready")
    p.add_argument("--max-workers", type=int, default=None, help="requests served at once (default 16; more wait for a slot)")
    p.add_argument("--max-queued-calls", type=int, default=None, help="calls that may wait for a slot (default 256)")
    p.add_argument("--max-queue-wait-ms", type=float, default=None, help="longest wait for a slot (default 5000)")
    p.add_argument("--max-queued-bytes", type=int, default=None, help="most request bytes waiting calls may hold (default 256 MiB)")
    p.add_argument("--batch-max-delay-ms", type=float, default=None, help="dynamic batching: longest wait for calls on their way (default 2; 0: off)")
    p.add_argument("--batch-max-rows", type=int, default=None, help="most contacts in one batched pass (default 1024)")
    p.add_argument("--intra-op-threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    p.add_argument("--tree-form", choices=("auto", "native", "gemm"), default=None, help=tree_help)
    p.add_argument("--inter-op-threads", type=int, default=None, help="ONNX Runtime inter-op threads (default 0: its own)")
    p.add_argument("--ort-spinning", action=argparse.BooleanOptionalAction, default=None, help="ONNX Runtime threads spin between runs")
    p.add_argument("--processes", type=int, default=None, help="server processes sharing the port (default 1)")
    p.add_argument("--tls-cert", type=Path, default=None, help="PEM server certificate; with --tls-key, serve TLS only")
    p.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")
    p.add_argument("--tls-client-ca", type=Path, default=None, help="PEM CA: require client certificates it signed")
    p.add_argument("--tokens-file", type=Path, default=None, help="JSON file of token SHA-256 hashes and roles; calls need a token")
    p.add_argument("--admin-methods", type=lambda t: tuple(_groups(t)), default=None, help="comma-separated methods that need the admin role")
    p.add_argument("--max-model-bytes", type=int, default=None, help="largest model file loaded (default 1 GiB)")
    p.add_argument("--reload-interval", type=float, default=None, help="seconds between repository checks (default 10; 0: only ReloadModels)")
    p.add_argument("--metrics-port", type=int, default=None, help="Prometheus /metrics port (default -1: none; 0: any)")
    p.add_argument("--log-format", choices=("text", "json"), default=None, help="log lines as text or JSON with request ids")
    p.add_argument("--insecure", action="store_true", default=None, help="serve a non-loopback --host with neither TLS nor tokens (explicitly)")
    p.add_argument("--base-root", dest="base_roots", type=Path, action="append", default=None, help="folder TopN may read bases from by path (repeatable; default: none)")

    p = command("score", cmd_score, "stream a base to a server and write every score to Parquet")
    p.add_argument("--server", required=True, help="HOST:PORT of a scorecast server, or several comma-separated (failover)")
    p.add_argument("--data", type=_source, required=True, help=DATA_HELP)
    p.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to wait for the server")
    p.add_argument("--retries", type=int, default=6, help="failed streams in a row before giving up (default 6; backoff 0.5 s doubling to 8 s)")
    p.add_argument("--resume", action="store_true", help="go on from the chunks an interrupted run kept in <out>.resume/")
    p.add_argument("--token", default=None, help="bearer token (default: SCORECAST_TOKEN; prefer the variable: flags show in ps)")
    p.add_argument("--tls", action="store_true", help="use TLS with the system's root certificates")
    p.add_argument("--tls-ca", type=Path, default=None, help="PEM CA that signed the server's certificate (implies TLS)")
    p.add_argument("--tls-cert", type=Path, default=None, help="PEM client certificate, if the server asks for one")
    p.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")
    _add_account(p, "account whose models score")
    _add_score_options(p)

    p = command("rescore", cmd_rescore, "score a whole base in process (no server), same pipeline")
    p.add_argument("--models", type=Path, required=True, help="model repository folder")
    p.add_argument("--data", type=_source, required=True, help=DATA_HELP)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="ONNX Runtime execution provider")
    p.add_argument("--intra-op-threads", type=int, default=0, help="ONNX Runtime threads (0: all cores)")
    p.add_argument("--tree-form", choices=("auto", "native", "gemm"), default="auto", help=tree_help)
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process; ray: Ray Data on a Ray cluster (needs scorecast[ray]); --out is then a Parquet dataset folder",
    )
    p.add_argument("--address", default=None, help="ray: the cluster's HOST:PORT (default RAY_ADDRESS, else a local cluster)")
    p.add_argument("--ray-actors", type=int, default=None, help="ray: scoring actors (default: the cluster's CPUs - 1)")
    _add_account(p, "account whose models score: MODELS/ACCOUNT/")
    _add_score_options(p)

    p = command("top", cmd_top, "the N contacts with the highest score among those matching a filter (TopN over gRPC)")
    p.add_argument("--server", required=True, help="HOST:PORT of a scorecast server")
    p.add_argument("--by", required=True, help="score column to rank by, <score>.<output> (e.g. affinity.shoes)")
    p.add_argument("--n", type=int, required=True, help="how many contacts to return")
    p.add_argument("--where", action="append", default=[], help="filter clause 'column op value' (repeatable, ANDed; see README)")
    p.add_argument("--data", type=Path, default=None, help="local base folder, streamed to the server")
    p.add_argument("--base-path", default=None, help="base folder on the server (under its --base-root), read there")
    p.add_argument("--out", type=Path, required=True, help="output Parquet file (written atomically)")
    add_option_flags(p, AS_OF_HELP)
    p.add_argument("--chunk-contacts", type=int, default=50_000, help="contacts per chunk (default 50000)")
    _add_account(p, "account whose models score")
    p.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to wait for the server")
    p.add_argument("--token", default=None, help="bearer token (default: SCORECAST_TOKEN)")
    p.add_argument("--tls", action="store_true", help="use TLS with the system's root certificates")
    p.add_argument("--tls-ca", type=Path, default=None, help="PEM CA that signed the server's certificate (implies TLS)")
    p.add_argument("--tls-cert", type=Path, default=None, help="PEM client certificate, if the server asks for one")
    p.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")

    from .fleet import add_fleet_commands

    p = sub.add_parser("fleet", help="nightly jobs over every account of a fleet: train, rescore, promote", description="nightly jobs over every account of a fleet")
    add_fleet_commands(p, _source, _scores, parse_as_of, DATA_HELP)

    p = command("demo", cmd_demo, "simulate a base, train, serve, score it over gRPC, print a summary")
    p.add_argument("--contacts", type=int, default=1_000_000, help="contacts to simulate (default 1000000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--workdir", type=Path, default=Path("demo-data"), help="folder for the base, models and scores")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scorecast`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # SIGTERM unwinds like Ctrl-C, so context managers (the atomic writers) clean up before exit;
    # `serve` installs its own graceful handler over this one.
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("scorecast: interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as exc:
        print(f"scorecast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        from scorecast.atomic import DiskFull

        if not isinstance(exc, DiskFull):
            raise
        print(f"scorecast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        import grpc

        from scorecast.server.errors import ScorecastError

        if isinstance(exc, ScorecastError):
            print(f"scorecast {args.command}: error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, grpc.RpcError):
            print(f"scorecast {args.command}: error: server said {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
            return 2
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt

