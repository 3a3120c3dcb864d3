"""Request options: each source (native header, Python keywords, OIP parameters, command line)
gives the same spec; ranges are refused naming ``options.<name>``; a model's defaults fill what
a request leaves unset."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from scorecast.client import header
from scorecast.errors import InvalidArgument
from scorecast.metadata import ModelMetadata, OutputSpec
from scorecast.options import (
    OPTIONS,
    ScoreSpec,
    add_option_flags,
    option_values,
    request_columns,
    score_options,
    spec_from_header,
    spec_from_parameters,
)
from scorecast.proto import oip, pb

AS_OF = datetime(2026, 1, 1, 12, 30, 15, 250_000, tzinfo=UTC)
AS_OF_US = int(AS_OF.timestamp()) * 1_000_000 + 250_000

EVERY_OPTION: dict[str, Any] = {
    "as_of": AS_OF,
    "horizon_days": 30,
    "product_groups": ["shoes", "books"],
    "churn_threshold": 0.25,
    "exclude_bought": False,  # false is an answer, not "unset"
    "uplift_threshold": 0.1,
    "buy_threshold": 0.7,
}
EXPECTED = ScoreSpec(
    scores=("affinity",),
    as_of_us=AS_OF_US,
    horizon_days=30,
    product_groups=("shoes", "books"),
    model_versions={"affinity": "3"},
    churn_threshold=0.25,
    exclude_bought=False,
    uplift_threshold=0.1,
    buy_threshold=0.7,
)


def test_every_option_is_declared_once_and_matches_the_wire() -> None:
    """OPTIONS lists ScoreOptions' fields in their order; each has help and a kind."""
    assert [o.name for o in OPTIONS] == [f.name for f in pb.ScoreOptions.DESCRIPTOR.fields]
    assert all(o.help for o in OPTIONS)
    assert {*EVERY_OPTION, "model_versions"} == {o.name for o in OPTIONS}  # a new option joins the tests below
    assert {o.attr for o in OPTIONS} < {f.name for f in dataclasses.fields(ScoreSpec)}


def test_python_keywords_through_the_header() -> None:
    """The client's keywords -> ScoreHeader -> the server's spec."""
    message = header(["affinity"], model_versions={"affinity": "3"}, **EVERY_OPTION)
    assert spec_from_header(pb.ScoreHeader.FromString(message.SerializeToString())) == EXPECTED


def test_open_inference_parameters() -> None:
    """OIP parameters (as_of as ISO text or INT64 µs, groups comma-separated) give the same spec."""
    for as_of in ({"string_param": "2026-01-01T12:30:15.25Z"}, {"int64_param": AS_OF_US}):
        parameters = {
            "as_of": oip.InferParameter(**as_of),
            "horizon_days": oip.InferParameter(int64_param=30),
            "product_groups": oip.InferParameter(string_param="shoes,books"),
            "churn_threshold": oip.InferParameter(double_param=0.25),
            "exclude_bought": oip.InferParameter(bool_param=False),
            "uplift_threshold": oip.InferParameter(double_param=0.1),
            "buy_threshold": oip.InferParameter(double_param=0.7),
        }
        assert spec_from_parameters("affinity", "3", parameters) == EXPECTED


def test_command_line_flags() -> None:
    """The flags add_option_flags declares, parsed, are the client's keywords."""
    parser = argparse.ArgumentParser()
    add_option_flags(parser, "as of")
    args = parser.parse_args(
        ["--as-of", "2026-01-01T12:30:15.250+00:00", "--horizon-days", "30", "--product-groups", "shoes, books",
         "--model-versions", "affinity=3", "--churn-threshold", "0.25", "--include-bought",
         "--uplift-threshold", "0.1", "--buy-threshold", "0.7"]
    )  # fmt: skip
    assert spec_from_header(header(["affinity"], **option_values(args))) == EXPECTED
    unset = spec_from_header(header(["affinity"], **option_values(parser.parse_args([]))))
    assert (unset.horizon_days, unset.product_groups, unset.model_versions, unset.exclude_bought) == (0, (), {}, None)
    assert parser.parse_args(["--exclude-bought"]).exclude_bought is True


def test_unset_options_read_as_unset() -> None:
    """An empty header: now as as_of, zeros, None for the bool with presence, the default account."""
    before = int(datetime.now(UTC).timestamp() * 1e6)
    spec = spec_from_header(pb.ScoreHeader(scores=["rfm"]))
    assert spec.as_of_us >= before
    assert dataclasses.replace(spec, as_of_us=0) == ScoreSpec(scores=("rfm",), as_of_us=0)
    assert spec.account == ""


@pytest.mark.parametrize(
    ("option", "value"),
    [("horizon_days", -1), ("horizon_days", 3651), ("churn_threshold", 1.5), ("churn_threshold", float("nan")),
     ("uplift_threshold", 1.0), ("buy_threshold", -0.1)],
)  # fmt: skip
def test_ranges_are_refused_naming_the_option(option: str, value: float) -> None:
    """Every source ends in ScoreSpec: out of range is InvalidArgument naming options.<name>."""
    with pytest.raises(InvalidArgument, match=rf"^options\.{option}: got"):
        spec_from_header(header(["rfm"], **{option: value}))
    with pytest.raises(InvalidArgument, match=rf"^options\.{option}: got"):
        ScoreSpec(scores=("rfm",), as_of_us=0, **{option: value})


def test_wire_type_limits_and_unknown_keywords() -> None:
    """A value the wire cannot carry names its option; an unknown keyword is a TypeError."""
    with pytest.raises(InvalidArgument, match=r"^options\.horizon_days"):
        score_options(horizon_days=2**40)
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        score_options(as_of=datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="horizon"):
        score_options(horizon=3)


def _model(features: tuple[str, ...], request_defaults: dict[str, float] | None = None, horizon_days: int | None = None) -> ModelMetadata:
    return ModelMetadata(
        score="m",
        version="1",
        model_type="test",
        features=features,
        outputs=(OutputSpec("v", "float32", "", onnx_output="v"),),
        trained_at="2026-01-01T00:00:00",
        data_as_of="2026-01-01T00:00:00",
        horizon_days=horizon_days,
        params={} if request_defaults is None else {"request_defaults": request_defaults},
    )


def test_model_defaults_fill_what_a_request_leaves_unset() -> None:
    """request:<option> columns: the request's value, else request_defaults, else (horizon) the model's own."""
    meta = _model(("frequency", "request:horizon_days", "request:churn_threshold"), {"churn_threshold": 0.5}, horizon_days=365)
    assert request_columns(meta) == {1: 365.0, 2: 0.5}  # training's probe: every option unset
    spec = ScoreSpec(scores=("m",), as_of_us=0, horizon_days=30, churn_threshold=0.25)
    assert request_columns(meta, spec) == {1: 30.0, 2: 0.25}
    assert request_columns(_model(("request:horizon_days",), {"horizon_days": 7}, horizon_days=365)) == {0: 7.0}


@pytest.mark.parametrize(("requested", "expected"), [(None, 1.0), (False, 0.0), (True, 1.0)])
def test_exclude_bought_false_overrides_a_learned_true(requested: bool | None, expected: float) -> None:
    """Unset takes the model's learned default; an explicit false is kept, not read as unset."""
    meta = _model(("request:exclude_bought",), {"exclude_bought": 1.0})
    assert request_columns(meta, ScoreSpec(scores=("m",), as_of_us=0, exclude_bought=requested)) == {0: expected}


def test_a_model_without_a_default_or_an_unknown_option_is_refused() -> None:
    """No default for an unset option: set it; a request:<name> no option fills: named."""
    with pytest.raises(InvalidArgument, match=r"options\.churn_threshold.*no default"):
        request_columns(_model(("request:churn_threshold",)))
    with pytest.raises(InvalidArgument, match="request:colour.*fills only horizon_days"):
        request_columns(_model(("request:colour",)))
