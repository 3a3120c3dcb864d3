"""``scorecast fleet train``: retrain one account's models, promoting only what is not worse.

``TrainAccount`` is the job ``scorecast.fleet.run_fleet`` runs for each account (picklable: it
travels to pool processes and Ray tasks): it reads the account's base (its folder, or its
schema through ``sources.local_base``), fits its scores as the next versions of
``MODELS/<account>/``, and lets the champion/challenger gate (``champion.py``) put each
version where it belongs: served, or kept as a candidate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from threadpoolctl import threadpool_limits

from scorecast.base import open_table
from scorecast.fleet import AccountResult, account_base
from scorecast.model_store import check_name
from scorecast.sources import Source, local_base

from .champion import PromotionPolicy, decide, settle
from .train import Fitter, fit_models

__all__ = ["TrainAccount"]


@dataclass(frozen=True)
class TrainAccount:
    """Retrain one account of the fleet ``data`` into ``models/<account>/``."""

    data: Source
    models: Path
    scores: Sequence[str] | None = None
    as_of: datetime | None = None
    policy: PromotionPolicy = field(default_factory=PromotionPolicy)
    threads: int | None = 1  # small accounts' fits gain nothing from threads (the pool runs one per core)
    fitters: Mapping[str, Fitter] | None = None  # replacements for some scores' fitters (tests plant a regression)

    def __call__(self, account: str) -> AccountResult:
        root = Path(self.models) / check_name("account", account)
        with local_base(account_base(self.data, account)) as base, threadpool_limits(self.threads):
            built = fit_models(base, root, self.scores, self.as_of, fitters=self.fitters)
            contacts = open_table(base, "contacts")
            rows = contacts.count_rows() if contacts is not None else 0
        verdicts = []
        root.mkdir(parents=True, exist_ok=True)
        for version in built:
            verdict = decide(version, root, self.policy)
            settle(version, verdict, root)
            verdicts.append(verdict)
        kept = [v for v in verdicts if not v.promoted]
        compared = [v for v in verdicts if v.challenger_value is not None]
        if kept:
            outcome = "candidate"
        elif all(v.reason == "first version" for v in verdicts):
            outcome = "first version"
        else:
            outcome = "promoted"
        return AccountResult(
            account,
            outcome,
            rows=rows,
            metric="; ".join(v.line() for v in compared) if compared else "",
            reason="; ".join(f"{v.score} v{v.version} kept as a candidate: {v.reason}" for v in kept),
            details={"versions": {v.score: {"version": v.version, "promoted": v.promoted} for v in verdicts}},
        )
