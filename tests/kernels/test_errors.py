"""kernels/errors.py: InputError carries its field and survives pickling (Ray, multiprocessing)."""

from __future__ import annotations

import pickle

from scorecast.kernels import InputError


def test_input_error_names_the_field_and_is_a_value_error() -> None:
    """The message starts with the field; callers catching ValueError still catch it."""
    err = InputError("orders.ts", "3 null values of 10")
    assert isinstance(err, ValueError)
    assert err.field == "orders.ts"
    assert str(err) == "orders.ts: 3 null values of 10"


def test_input_error_round_trips_through_pickle() -> None:
    """Field and message come back intact from another process."""
    err = pickle.loads(pickle.dumps(InputError("orders.amount", "got type string")))
    assert (type(err), err.field, str(err)) == (
        InputError,
        "orders.amount",
        "orders.amount: got type string",
    )
