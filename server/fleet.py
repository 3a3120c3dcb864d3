"""``scorecast fleet rescore``: rescore one account's base with the versions its repository serves.

``RescoreAccount`` is the job ``scorecast.fleet.run_fleet`` runs for each account (picklable):
the models of ``MODELS/<account>/`` (a repository of its own: what the server serves for the
account, candidates never), the account's base (folder or schema), the scores into
``OUT/<account>.parquet`` or the scores table of the account's schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from scorecast.fleet import AccountResult, account_base, account_output
from scorecast.model_store import check_name
from scorecast.options import ScoreSpec
from scorecast.sources import Source, local_base

from .repository import ModelRepository
from .rescore import base_columns, rescore
from .runtime import SessionOptions

__all__ = ["RescoreAccount"]


@dataclass(frozen=True)
class RescoreAccount:
    """Rescore one account of the fleet ``data`` with ``models/<account>/`` into ``out``."""

    data: Source
    models: Path
    out: Source
    scores: tuple[str, ...]
    as_of: datetime
    chunk_contacts: int = 50_000
    intra_op_threads: int = 1  # one account per core: ONNX Runtime's own pool would only contend

    def __call__(self, account: str) -> AccountResult:
        repository = ModelRepository.load(Path(self.models) / check_name("account", account), SessionOptions(intra_op_threads=self.intra_op_threads))
        spec = ScoreSpec(scores=self.scores, as_of_us=int(self.as_of.timestamp() * 1_000_000))
        out = account_output(self.out, account)
        if isinstance(out, Path):
            out.parent.mkdir(parents=True, exist_ok=True)
        with local_base(account_base(self.data, account), base_columns(repository, spec)) as base:  # type: ignore[arg-type]
            result = rescore(repository, base, spec, out, chunk_contacts=self.chunk_contacts)
        versions = ", ".join(f"{m.meta.score} v{m.meta.version}" for m in repository.defaults() if m.meta.score in self.scores)
        return AccountResult(account, "rescored", rows=result.rows, metric=f"served {versions}")
