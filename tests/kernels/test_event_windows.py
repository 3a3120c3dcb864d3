"""kernels/event_windows.py: window counts against a NumPy reference, and the wrapper's checks."""

import numpy as np
import pytest

from scorecast.kernels import InputError
from scorecast.kernels.event_windows import window_counts
from scorecast.kernels.time_units import US_PER_DAY

AS_OF = 1_700_000_000_000_000


def test_counts_sums_and_recency_match_a_reference() -> None:
    rng = np.random.default_rng(5)
    n = 300
    codes = rng.integers(0, 10, n)
    ts = AS_OF - rng.integers(-3, 60, n) * US_PER_DAY  # some after as_of: ignored
    cats = rng.integers(-1, 3, n)
    weights = np.where(rng.random(n) < 0.1, np.nan, rng.random(n))
    got = window_counts(codes, 10, ts, cats, 3, AS_OF, np.array([7, 30]), weights)
    for c in range(10):
        for slot in range(4):
            rows = (codes == c) & (ts <= AS_OF) & ((cats == slot) if slot < 3 else True)
            for k, days in enumerate((7, 30)):
                inside = rows & (ts > AS_OF - days * US_PER_DAY)
                assert got.counts[c, slot, k] == inside.sum()
                assert got.sums[c, slot, k] == pytest.approx(np.nansum(weights[inside]))
            want = (AS_OF - ts[rows].max()) / US_PER_DAY if rows.any() else np.nan
            np.testing.assert_equal(got.recency_days[c, slot], want)


@pytest.mark.parametrize(
    "kwargs, where",
    [({"codes": [0, 5]}, "codes"), ({"category_codes": [0, 3]}, "category_codes"), ({"window_days": [0]}, "window_days")],
)
def test_bad_arguments_are_named(kwargs: dict, where: str) -> None:
    args = {"codes": [0, 1], "n_contacts": 2, "ts_us": [AS_OF, AS_OF], "category_codes": [0, -1], "n_categories": 2, "as_of_us": AS_OF, "window_days": [7]}
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        window_counts(**args)
    assert where in str(err.value)
