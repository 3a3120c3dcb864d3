"""Model metadata: the typed params the server reads, checked when a model's metadata is read,
and the same JSON object on disk."""

from __future__ import annotations

import json

import pytest

from scorecast.metadata import ModelMetadata, ModelParams, OutputSpec

PARAMS = {
    "groups": ["shoes", "books"],
    "max_batch_rows": 512,
    "request_defaults": {"churn_threshold": 0.5, "horizon_days": 30},
    "feature_params": {"web": {"pages": []}},
    "probe": {"features": [[1.0, None]], "outputs": {"value": [[2.0]]}},
    "segments": [{"name": "hot", "description": "visits often"}],  # model specific
}


def _meta(params: dict) -> ModelMetadata:
    return ModelMetadata(
        score="affinity",
        version="3",
        model_type="test",
        features=("frequency", "total_amount"),
        outputs=(OutputSpec("shoes", "float32", "", onnx_output="p", column=0),),
        trained_at="2026-01-02T00:00:00+00:00",
        data_as_of="2026-01-01T00:00:00+00:00",
        params=params,
    )


def test_typed_fields_and_the_model_specific_rest() -> None:
    params = _meta(PARAMS).params
    assert isinstance(params, ModelParams)
    assert params.groups == ("shoes", "books")
    assert params.max_batch_rows == 512
    assert params.request_defaults == {"churn_threshold": 0.5, "horizon_days": 30}
    assert params.feature_params == {"web": {"pages": []}}
    assert params.probe == PARAMS["probe"]
    assert params.extra == {"segments": PARAMS["segments"]}
    assert dict(params) == PARAMS and params["segments"] == PARAMS["segments"]  # the JSON object itself


def test_absent_keys_stay_absent() -> None:
    """A model without groups has none (None), and its JSON object gains no key."""
    params = _meta({"k": 10}).params
    assert (params.groups, params.probe, params.max_batch_rows, params.request_defaults, params.feature_params) == (None,) * 5
    assert dict(params) == {"k": 10} and "groups" not in params


def test_json_round_trip_keeps_the_format() -> None:
    """to_json writes params as the flat object it was; from_json reads it back equal."""
    meta = _meta(PARAMS)
    assert json.loads(meta.to_json())["params"] == PARAMS
    assert ModelMetadata.from_json(meta.to_json()) == meta


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("groups", "shoes"),
        ("groups", ["shoes", 3]),
        ("max_batch_rows", 0),
        ("max_batch_rows", 1.5),
        ("request_defaults", {"churn_threshold": "high"}),
        ("request_defaults", [0.5]),
        ("feature_params", [1]),
        ("probe", {"features": [[1.0]]}),
    ],
)
def test_bad_params_are_refused_at_load_naming_the_key_and_the_model(key: str, value: object) -> None:
    text = json.dumps({**json.loads(_meta({}).to_json()), "params": {key: value}})
    with pytest.raises(ValueError, match=rf"^affinity version 3: params\.{key} must"):
        ModelMetadata.from_json(text)


def test_params_must_be_an_object() -> None:
    text = json.dumps({**json.loads(_meta({}).to_json()), "params": [1, 2]})
    with pytest.raises(ValueError, match="params must be a JSON object"):
        ModelMetadata.from_json(text)
