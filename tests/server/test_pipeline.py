"""The scoring pipeline, without gRPC: rows, values, nulls, options and their errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from scorecast.kernels import InputError
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.options import ScoreSpec
from scorecast.server.errors import InvalidArgument, ModelNotFound, ResourceExhausted
from scorecast.server.pipeline import ScoringPipeline
from scorecast.server.repository import ModelRepository

from .conftest import AS_OF_US


def spec(*scores: str, **kw: object) -> ScoreSpec:
    return ScoreSpec(scores=scores, as_of_us=AS_OF_US, **kw)  # type: ignore[arg-type]


def test_rows_follow_contacts_and_values_match_features(repository: ModelRepository, orders: pa.Table, contacts: pa.Table) -> None:
    """Rows are the contacts table's, in order; the linear model sees frequency and total_amount."""
    batch = ScoringPipeline(repository, spec("spend")).score({"contacts": contacts, "orders": orders})
    assert batch.column("contact_id").to_pylist() == [3, 9, 7, 11]
    # frequency + 10 * total: contact 3 -> 1 + 40; 9 (future order ignored) -> 0; 7 -> 2 + 400; 11 -> 0
    np.testing.assert_allclose(batch.column("spend.value").to_numpy(), [41, 0, 402, 0])


def test_rows_without_contacts_table_are_distinct_order_ids(repository: ModelRepository, orders: pa.Table) -> None:
    """Without a contacts table the rows are the orders' contact ids in first-appearance order."""
    batch = ScoringPipeline(repository, spec("spend")).score({"orders": orders})
    assert batch.column("contact_id").to_pylist() == [7, 3, 9]


def test_groups_and_product_group_filter(repository: ModelRepository, orders: pa.Table) -> None:
    """One column per group; options.product_groups keeps only the named ones."""
    batch = ScoringPipeline(repository, spec("affinity")).score({"orders": orders})
    assert batch.schema.names == ["contact_id", "affinity.shoes", "affinity.books"]
    assert batch.column("affinity.shoes").to_pylist() == [1.0, 1.0, 0.0]
    batch = ScoringPipeline(repository, spec("affinity", product_groups=("books",))).score({"orders": orders})
    assert batch.schema.names == ["contact_id", "affinity.books"]


def test_null_value_and_category_outputs(repository: ModelRepository, orders: pa.Table, contacts: pa.Table) -> None:
    """null_value becomes a null; category outputs are dictionary columns with the metadata's names."""
    batch = ScoringPipeline(repository, spec("segments")).score({"contacts": contacts, "orders": orders})
    assert batch.column("segments.count").to_pylist() == [1, None, 2, None]
    segment = batch.column("segments.segment")
    assert pa.types.is_dictionary(segment.type)
    assert segment.to_pylist() == ["one", "none", "many", "none"]


def test_several_scores_in_one_batch(repository: ModelRepository, orders: pa.Table) -> None:
    """Scores come in the requested order after contact_id."""
    batch = ScoringPipeline(repository, spec("segments", "spend")).score({"orders": orders})
    assert batch.schema.names == ["contact_id", "segments.count", "segments.segment", "spend.value"]


def test_empty_chunk_gives_empty_batch(repository: ModelRepository) -> None:
    """A chunk with no contacts is answered with zero rows and the full schema."""
    empty = pa.table({"contact_id": pa.array([], pa.int64())})
    batch = ScoringPipeline(repository, spec("spend", "segments")).score({"contacts": empty})
    assert batch.num_rows == 0
    assert batch.schema.names == ["contact_id", "spend.value", "segments.count", "segments.segment"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scores": ()}, InvalidArgument, "header.scores"),
        ({"scores": ("spend", "spend")}, InvalidArgument, "listed twice"),
        ({"scores": ("nope",)}, ModelNotFound, "'nope'"),
        ({"scores": ("spend",), "model_versions": {"spend": "7"}}, ModelNotFound, "version '7'"),
        ({"scores": ("spend",), "model_versions": {"affinity": "1"}}, InvalidArgument, "options.model_versions"),
        ({"scores": ("affinity",), "horizon_days": 30}, InvalidArgument, "options.horizon_days.*90"),
        ({"scores": ("affinity",), "product_groups": ("toys",)}, InvalidArgument, "options.product_groups.*toys"),
        ({"scores": ("spend",), "product_groups": ("shoes",)}, InvalidArgument, "options.product_groups"),
    ],
    ids=["no-score", "twice", "unknown-score", "unknown-version", "pin-unrequested", "horizon", "unknown-group", "groups-unused"],
)
def test_bad_requests_name_the_field(repository: ModelRepository, kwargs: dict, error: type[Exception], match: str) -> None:
    """Each bad option is refused before any chunk, naming the field and the value."""
    scores = kwargs.pop("scores")
    with pytest.raises(error, match=match):
        ScoringPipeline(repository, ScoreSpec(scores=scores, as_of_us=AS_OF_US, **kwargs))


def test_request_options_fill_request_features(tmp_path, orders: pa.Table) -> None:  # noqa: ANN001
    """request:<option> columns get the request's value, else the model's default; a
    timestamp output is days after as-of."""
    from ..support.fakes import horizon_model, write_model

    repo = ModelRepository.load(write_model(tmp_path, horizon_model()).parents[1])
    batch = ScoringPipeline(repo, spec("value")).score({"orders": orders})
    assert batch.column("value.value").to_pylist() == [2 * 365, 365, 0]  # contacts 7, 3, 9
    assert batch.column("value.threshold").to_pylist() == [0.5] * 3
    due = batch.column("value.due")
    assert due.type == pa.timestamp("us", tz="UTC")
    assert due[0].value == AS_OF_US + 365 * US_PER_DAY
    batch = ScoringPipeline(repo, spec("value", horizon_days=30, churn_threshold=0.25)).score({"orders": orders})
    assert batch.column("value.value").to_pylist() == [60, 30, 0]
    assert batch.column("value.threshold").to_pylist() == [0.25] * 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"horizon_days": -1}, "options.horizon_days"), ({"horizon_days": 99_999}, "options.horizon_days"), ({"churn_threshold": 1.5}, "options.churn_threshold")],
    ids=["negative-horizon", "huge-horizon", "threshold"],
)
def test_option_ranges(kwargs: dict, match: str) -> None:
    """Out-of-range options are refused when the request is read."""
    with pytest.raises(InvalidArgument, match=match):
        spec("spend", **kwargs)


def test_missing_column_is_an_input_error(repository: ModelRepository, orders: pa.Table) -> None:
    """A feature's column missing from the chunk is an InputError naming table.column."""
    with pytest.raises(InputError, match="orders.product_group"):
        ScoringPipeline(repository, spec("affinity")).score({"orders": orders.drop_columns(["product_group"])})


def test_chunk_row_limit(repository: ModelRepository, orders: pa.Table) -> None:
    """More contacts than max_rows is RESOURCE_EXHAUSTED, naming the setting."""
    with pytest.raises(ResourceExhausted, match="max_rows_per_chunk"):
        ScoringPipeline(repository, spec("spend"), max_rows=2).score({"orders": orders})


def test_serial_kernels_for_small_chunks_give_the_same_scores(
    repository: ModelRepository, orders: pa.Table, contacts: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks run the kernels on one thread: same scores as numba's pool, and the calling
    thread's numba thread count is put back afterwards."""
    import numba

    from scorecast.server import pipeline

    tables = {"contacts": contacts, "orders": orders}
    before = numba.get_num_threads()
    serial = ScoringPipeline(repository, spec("segments", "spend", "affinity")).score(tables)
    assert numba.get_num_threads() == before
    monkeypatch.setattr(pipeline, "SERIAL_KERNEL_ROWS", 0)  # every chunk on the pool
    pooled = ScoringPipeline(repository, spec("segments", "spend", "affinity")).score(tables)
    assert serial.equals(pooled)


def test_shared_feature_matrix_equals_one_matrix_per_model(repository: ModelRepository, orders: pa.Table, contacts: pa.Table) -> None:
    """Models computed from one shared FeatureFrame.matrix call get exactly the columns they
    would get alone, whatever the order the scores are asked in."""
    tables = {"contacts": contacts, "orders": orders}
    together = ScoringPipeline(repository, spec("affinity", "spend", "segments")).score(tables)
    for score in ("affinity", "spend", "segments"):
        alone = ScoringPipeline(repository, spec(score)).score(tables)
        for name in alone.schema.names:
            assert together.column(name).equals(alone.column(name)), name


def test_matrix_outputs_convert_as_each_column_alone() -> None:
    """A matrix output's columns, converted at once, equal each column converted alone: values,
    NaN and inf as nulls, null_value as nulls, for every numeric dtype."""
    from scorecast.metadata import OutputSpec
    from scorecast.server.pipeline import _column, _columns

    values = np.array([[1.5, 0.0, np.nan], [0.0, 2.0, 3.0], [np.inf, 4.0, 0.0], [7.0, -np.inf, 1.0]], np.float32)
    finite = np.nan_to_num(values, posinf=9.0, neginf=-9.0)
    for dtype in ("float32", "float64", "int32"):
        for null_value in (None, 0.0):
            outs = [OutputSpec(f"c{j}", dtype, "", "m", column=j, null_value=null_value) for j in (2, 0, 1)]
            for matrix in (values, finite):
                bad = ~np.isfinite(matrix)
                with np.errstate(invalid="ignore"):  # NaN to int32, a null either way
                    got = _columns(outs, {"m": matrix}, 4, AS_OF_US)
                    alone = [_column(o, matrix[:, o.column], bad[:, o.column] if bad.any() else None, AS_OF_US) for o in outs]
                for out, column, expected in zip(outs, got, alone, strict=True):
                    assert column.equals(expected), (dtype, null_value, out.column, column, expected)
