"""``scorecast fleet train|rescore|promote``: the nightly jobs over every account of a fleet."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["add_fleet_commands"]


def _state_path(args: argparse.Namespace, job: str) -> Path:
    return args.state or Path(args.models) / f".fleet-{job}-state.json"


def _run(args: argparse.Namespace, job_name: str, job: object) -> None:
    from scorecast.fleet import FleetFailed, FleetState, fleet_accounts, run_fleet, summary
    from scorecast.sources import describe

    accounts = fleet_accounts(args.data)
    if args.accounts:
        wanted = set(args.accounts)
        unknown = sorted(wanted - set(accounts))
        if unknown:
            raise ValueError(f"accounts {unknown} are not in the fleet {describe(args.data)} ({len(accounts)} accounts)")
        accounts = [a for a in accounts if a in wanted]
    state = FleetState.open(_state_path(args, job_name), job_name, describe(args.data), args.resume)
    skipped = len(set(accounts) & state.done())
    if skipped:
        print(f"resuming: {skipped} of {len(accounts)} accounts already done ({state.path})")
    results = run_fleet(job, accounts, state, engine=args.engine, workers=args.workers, address=args.address, progress=True)  # type: ignore[arg-type]
    print(summary(results))
    failed = [r for r in results if r.failed]
    if failed:
        listed = "; ".join(f"{r.account} ({r.reason[:120]})" for r in failed)
        raise FleetFailed(f"{len(failed)} of {len(results)} accounts failed: {listed}; rerun with --resume to retry only them")


def cmd_fleet_train(args: argparse.Namespace) -> None:
    from scorecast.training.champion import PromotionPolicy
    from scorecast.training.fleet import TrainAccount

    policy = PromotionPolicy.from_file(args.promotion) if args.promotion else PromotionPolicy()
    Path(args.models).mkdir(parents=True, exist_ok=True)
    _run(args, "train", TrainAccount(args.data, Path(args.models).resolve(), args.scores, args.as_of, policy))


def cmd_fleet_rescore(args: argparse.Namespace) -> None:
    from scorecast.postgres import is_postgres_url
    from scorecast.server.fleet import RescoreAccount

    if not is_postgres_url(args.out):
        Path(args.out).mkdir(parents=True, exist_ok=True)
        args.out = Path(args.out).resolve()
    as_of = args.as_of or datetime.now(UTC)
    job = RescoreAccount(args.data, Path(args.models).resolve(), args.out, tuple(args.scores), as_of, args.chunk_contacts)
    _run(args, "rescore", job)


def cmd_fleet_promote(args: argparse.Namespace) -> None:
    from scorecast.model_store import check_name, promote_candidate

    path = promote_candidate(Path(args.models) / check_name("account", args.account), args.score, args.version)
    print(f"promoted {args.account} {args.score} version {args.version}: {path} (served from the next reload)")


def add_fleet_commands(fleet: argparse.ArgumentParser, source: object, scores: object, as_of: object, data_help: str) -> None:
    """The ``fleet`` command's subcommands."""
    sub = fleet.add_subparsers(dest="fleet_command", required=True, metavar="JOB")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", type=source, required=True, help="the fleet: a folder of bases <account>/, or postgresql://.../db (a schema per account)")
        p.add_argument("--models", type=Path, required=True, help="model repository: MODELS/<account>/<score>/<version>.onnx")
        p.add_argument("--as-of", type=as_of, default=None, help="reference time (default: train: each base's last order; rescore: now)")
        p.add_argument("--engine", choices=("local", "ray"), default="local", help="local: a process pool; ray: tasks spread over a Ray cluster")
        p.add_argument("--address", default=None, help="ray: the cluster's HOST:PORT (default RAY_ADDRESS, else a local cluster)")
        p.add_argument("--workers", type=int, default=None, help="local: processes (default: one per core); ray: tasks in flight / 2")
        p.add_argument("--accounts", type=lambda t: [a for a in t.split(",") if a], default=None, help="comma-separated accounts (default: all)")
        p.add_argument("--resume", action="store_true", help="skip the accounts the state file says finished (failed ones run again)")
        p.add_argument("--state", type=Path, default=None, help="state file (default MODELS/.fleet-<job>-state.json), rewritten atomically")

    p = sub.add_parser("train", help="retrain every account; promote a version only if not worse than the serving one")
    p.set_defaults(func=cmd_fleet_train)
    common(p)
    p.add_argument("--scores", type=scores, default=None, help="comma-separated scores (default: what each base supports)")
    p.add_argument("--promotion", type=Path, default=None, help='JSON tolerances: {"default": 0.01, "scores": {"affinity": 0.005}}, in each score\'s holdout metric (AUC, NDCG, Qini or silhouette points, a share of clv\'s MAE; recommendations, promo_appetence and lead have their own defaults)')

    p = sub.add_parser("rescore", help="rescore every account's base with its served models")
    p.set_defaults(func=cmd_fleet_rescore)
    common(p)
    p.add_argument("--scores", type=scores, required=True, help="comma-separated scores")
    p.add_argument("--out", type=source, required=True, help="folder (OUT/<account>.parquet) or postgresql://...?table=T (T in each account's schema)")
    p.add_argument("--chunk-contacts", type=int, default=50_000, help="contacts per chunk (default 50000)")

    p = sub.add_parser("promote", help="serve a candidate the gate kept back (pin it): move it into the served versions")
    p.set_defaults(func=cmd_fleet_promote)
    p.add_argument("--models", type=Path, required=True, help="model repository")
    p.add_argument("--account", required=True, help="the account")
    p.add_argument("--score", required=True, help="the score")
    p.add_argument("--version", required=True, help="the candidate's version")
