"""training/simulate_email.py: the e-mail tables of a simulated base and their truth."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from scorecast.training.simulate import retail as sim
from scorecast.training.simulate.email import EMAIL_EVENTS, EmailConfig
from scorecast.training.simulate.retail import SimulationConfig


@pytest.fixture(scope="module")
def base() -> sim.SimulatedBase:
    return sim.simulate_base(SimulationConfig(n_contacts=8_000, seed=5))


def _events(base: sim.SimulatedBase):  # noqa: ANN202
    return base.extra["email_events"].to_pandas()


def test_tables_schema_and_windows(base: sim.SimulatedBase) -> None:
    events, campaigns = base.extra["email_events"], base.extra["campaigns"]
    assert events.column_names == ["contact_id", "ts", "campaign_id", "event"]
    assert set(pc.unique(events["event"]).to_pylist()) == set(EMAIL_EVENTS)
    assert campaigns.column_names == ["campaign_id", "ts", "keywords", "promo"]
    end = base.config.end
    assert pc.max(events["ts"]).as_py() <= end < pc.min(base.extra["truth/future_email_events"]["ts"]).as_py()
    assert set(pc.unique(events["contact_id"]).to_pylist()) <= set(base.contacts["contact_id"].to_pylist())
    assert set(pc.unique(events["campaign_id"]).to_pylist()) <= set(campaigns["campaign_id"].to_pylist())
    assert base.extra["truth/email_contacts"].num_rows == base.contacts.num_rows
    assert 15 < (events.num_rows + base.extra["truth/future_email_events"].num_rows) / base.contacts.num_rows < 45


def test_no_event_after_unsubscribe_and_one_send_to_bad_addresses(base: sim.SimulatedBase) -> None:
    df = _events(base).sort_values("ts", kind="stable")
    unsub = df[df.event == "unsubscribe"].groupby("contact_id").ts.min()
    later_sends = df[df.event == "sent"].merge(unsub.rename("unsub_ts"), on="contact_id")
    assert len(unsub) > 0 and (later_sends.ts <= later_sends.unsub_ts).all()
    bounced = df[df.event == "bounce"].contact_id.unique()
    sends = df[df.contact_id.isin(bounced) & (df.event == "sent")].groupby("contact_id").size()
    assert len(bounced) > 0 and (sends == 1).all()
    truth = base.extra["truth/email_contacts"].to_pandas()
    assert truth.set_index("contact_id").loc[bounced].email_bad_address.all()


def test_opens_drop_after_close_sends(base: sim.SimulatedBase) -> None:
    df = _events(base)
    sends = df[df.event == "sent"].sort_values(["contact_id", "ts"])
    gap = sends.groupby("contact_id").ts.diff().dt.total_seconds() / 86400
    opened = sends.set_index(["contact_id", "campaign_id"]).index.isin(
        df[df.event == "open"].set_index(["contact_id", "campaign_id"]).index
    )
    close = (gap < EmailConfig().fatigue_days).to_numpy()
    far = (gap >= 7).to_numpy()
    assert opened[close].mean() < 0.7 * opened[far].mean()


def test_truth_probabilities_match_outcomes(base: sim.SimulatedBase) -> None:
    truth = base.extra["truth/email_contacts"].to_pandas()
    has = truth.p_open_next.notna()
    assert abs(truth.p_open_next[has].mean() - truth.opened_next[has].mean()) < 0.02
    assert abs(truth.p_click_next[has].mean() - truth.clicked_next[has].mean()) < 0.01
    interests = truth[[c for c in truth.columns if c.startswith("interest:")]].to_numpy()
    np.testing.assert_allclose(interests.sum(axis=1), 1.0)
    assert (
        truth.top_keyword
        == np.array([c.removeprefix("interest:") for c in truth.columns if c.startswith("interest:")])[interests.argmax(1)]
    ).all()


def test_same_seed_same_tables_and_email_off() -> None:
    config = SimulationConfig(n_contacts=500, seed=2)
    a, b = sim.simulate_base(config), sim.simulate_base(config)
    assert a.extra["email_events"].equals(b.extra["email_events"])
    off = sim.simulate_base(SimulationConfig(n_contacts=500, seed=2, email=False))
    assert off.extra == {} and off.orders.equals(a.orders)  # e-mail draws leave the orders alone


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_keywords": 99}, "n_keywords"), ({"fatigue_factor": 2.0}, "fatigue_factor"), ({"send_a": 0}, "send_a")],
)
def test_email_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EmailConfig(**kwargs)
