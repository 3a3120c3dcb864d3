"""The B2B lead simulator: determinism, tables, and a truth that the kernels can recompute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scorecast.kernels import FeatureFrame
from scorecast.training.evaluation import roc_auc
from scorecast.training.simulate.b2b import (
    EXCLUDED_COUNTRIES,
    TRUE_BEHAVIOUR,
    B2BConfig,
    read_lead_truth,
    simulate_b2b,
    write_b2b,
)


@pytest.fixture(scope="module")
def base():  # noqa: ANN201
    return simulate_b2b(B2BConfig(n_contacts=3000, seed=5))


def test_same_seed_same_base(base) -> None:  # noqa: ANN001
    again = simulate_b2b(B2BConfig(n_contacts=3000, seed=5))
    assert (
        again.contacts.equals(base.contacts) and again.interactions.equals(base.interactions) and again.truth.equals(base.truth)
    )
    assert not simulate_b2b(B2BConfig(n_contacts=3000, seed=6)).truth.equals(base.truth)


def test_tables_follow_the_design(base) -> None:  # noqa: ANN001
    assert base.contacts.column_names == [
        "contact_id",
        "country",
        "ip_country",
        "industry",
        "employees",
        "annual_volume",
        "job_role",
        "email_domain",
    ]
    assert base.interactions.column_names == ["contact_id", "ts", "kind"]
    assert base.web_events.column_names == ["contact_id", "ts", "page", "duration_s"]
    end_us = int(base.config.end.timestamp() * 1_000_000)
    for table in (base.interactions, base.web_events):
        ts = table["ts"].cast("int64").to_numpy()
        assert ts.max() <= end_us and (np.diff(ts) >= 0).all()


def test_truth_behaviour_is_what_the_kernels_compute_at_the_cutoff(base) -> None:  # noqa: ANN001
    """The simulator's behaviour part is a function of features the lead family computes."""
    tables = {"contacts": base.contacts, "interactions": base.interactions, "web_events": base.web_events}
    names = [name for name, _, _ in TRUE_BEHAVIOUR]
    X = FeatureFrame(tables, int(base.config.cutoff.timestamp() * 1_000_000)).matrix(names).astype(np.float64)
    expected = sum(w * (np.log1p(X[:, j]) if t == "log1p" else (X[:, j] > 0)) for j, (_, t, w) in enumerate(TRUE_BEHAVIOUR))
    np.testing.assert_allclose(base.truth["behaviour_true"].to_numpy(), expected, rtol=1e-9)


def test_negative_signals_lower_conversion(base) -> None:  # noqa: ANN001
    p = base.truth["p_true"].to_numpy()
    country = base.contacts["country"].to_numpy(zero_copy_only=False)
    excluded = np.isin(country, EXCLUDED_COUNTRIES)
    assert p[excluded].mean() < p[~excluded].mean() / 10
    competitor = base.contacts["email_domain"].to_numpy(zero_copy_only=False) == "competitor"
    assert p[competitor].mean() < p[~competitor].mean() / 5
    converted = base.truth["converted"].to_numpy()
    assert 0.03 < converted.mean() < 0.12
    assert base.bayes_auc == roc_auc(converted, p) and base.bayes_auc > 0.8


def test_written_base_round_trips(base, tmp_path: Path) -> None:  # noqa: ANN001
    write_b2b(base, tmp_path / "b2b")
    truth, meta = read_lead_truth(tmp_path / "b2b")
    assert truth.equals(base.truth) and meta["bayes_auc"] == base.bayes_auc
    with pytest.raises(FileExistsError):
        write_b2b(base, tmp_path / "b2b")


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="n_contacts"):
        B2BConfig(n_contacts=0)
    with pytest.raises(ValueError, match="burst_share"):
        B2BConfig(burst_share=2.0)
