import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListModelsRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("score", "version", "account")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    score: str
    version: str
    account: str
    def __init__(self, score: _Optional[str] = ..., version: _Optional[str] = ..., account: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("score", "version", "model_type", "features", "outputs", "trained_at", "data_as_of", "horizon_days", "metrics", "params_json", "description", "ready", "providers", "available_versions", "input_columns", "failed_versions")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class FailedVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    TRAINED_AT_FIELD_NUMBER: _ClassVar[int]
    DATA_AS_OF_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    INPUT_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    FAILED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    score: str
    version: str
    model_type: str
    features: _containers.RepeatedScalarFieldContainer[str]
    outputs: _containers.RepeatedCompositeFieldContainer[OutputInfo]
    trained_at: _timestamp_pb2.Timestamp
    data_as_of: _timestamp_pb2.Timestamp
    horizon_days: int
    metrics: _containers.ScalarMap[str, float]
    params_json: str
    description: str
    ready: bool
    providers: _containers.RepeatedScalarFieldContainer[str]
    available_versions: _containers.RepeatedScalarFieldContainer[str]
    input_columns: _containers.RepeatedScalarFieldContainer[str]
    failed_versions: _containers.ScalarMap[str, str]
    def __init__(self, score: _Optional[str] = ..., version: _Optional[str] = ..., model_type: _Optional[str] = ..., features: _Optional[_Iterable[str]] = ..., outputs: _Optional[_Iterable[_Union[OutputInfo, _Mapping]]] = ..., trained_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data_as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., horizon_days: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., params_json: _Optional[str] = ..., description: _Optional[str] = ..., ready: _Optional[bool] = ..., providers: _Optional[_Iterable[str]] = ..., available_versions: _Optional[_Iterable[str]] = ..., input_columns: _Optional[_Iterable[str]] = ..., failed_versions: _Optional[_Mapping[str, str]] = ...) -> None: ...

class OutputInfo(_message.Message):
    __slots__ = ("name", "dtype", "description", "categories")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    description: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., description: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...

class ScoreOptions(_message.Message):
    __slots__ = ("as_of", "horizon_days", "product_groups", "model_versions", "churn_threshold", "exclude_bought", "uplift_threshold", "buy_threshold")
    class ModelVersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    HORIZON_DAYS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_GROUPS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CHURN_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_BOUGHT_FIELD_NUMBER: _ClassVar[int]
    UPLIFT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    BUY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    as_of: _timestamp_pb2.Timestamp
    horizon_days: int
    product_groups: _containers.RepeatedScalarFieldContainer[str]
    model_versions: _containers.ScalarMap[str, str]
    churn_threshold: float
    exclude_bought: bool
    uplift_threshold: float
    buy_threshold: float
    def __init__(self, as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., horizon_days: _Optional[int] = ..., product_groups: _Optional[_Iterable[str]] = ..., model_versions: _Optional[_Mapping[str, str]] = ..., churn_threshold: _Optional[float] = ..., exclude_bought: _Optional[bool] = ..., uplift_threshold: _Optional[float] = ..., buy_threshold: _Optional[float] = ...) -> None: ...

class ScoreHeader(_message.Message):
    __slots__ = ("scores", "options", "account")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedScalarFieldContainer[str]
    options: ScoreOptions
    account: str
    def __init__(self, scores: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[ScoreOptions, _Mapping]] = ..., account: _Optional[str] = ...) -> None: ...

class ContactChunk(_message.Message):
    __slots__ = ("tables",)
    class TablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.ScalarMap[str, bytes]
    def __init__(self, tables: _Optional[_Mapping[str, bytes]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: ScoreHeader
    chunk: ContactChunk
    def __init__(self, header: _Optional[_Union[ScoreHeader, _Mapping]] = ..., chunk: _Optional[_Union[ContactChunk, _Mapping]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("chunk_index", "rows", "scores", "models")
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    chunk_index: int
    rows: int
    scores: bytes
    models: _containers.RepeatedCompositeFieldContainer[ModelRef]
    def __init__(self, chunk_index: _Optional[int] = ..., rows: _Optional[int] = ..., scores: _Optional[bytes] = ..., models: _Optional[_Iterable[_Union[ModelRef, _Mapping]]] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("score", "version")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    score: str
    version: str
    def __init__(self, score: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ScoreBatchRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: ScoreHeader
    chunk: ContactChunk
    def __init__(self, header: _Optional[_Union[ScoreHeader, _Mapping]] = ..., chunk: _Optional[_Union[ContactChunk, _Mapping]] = ...) -> None: ...

class ScoreBatchResponse(_message.Message):
    __slots__ = ("rows", "scores", "models")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    scores: bytes
    models: _containers.RepeatedCompositeFieldContainer[ModelRef]
    def __init__(self, rows: _Optional[int] = ..., scores: _Optional[bytes] = ..., models: _Optional[_Iterable[_Union[ModelRef, _Mapping]]] = ...) -> None: ...

class ReloadModelsRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class LoadFailure(_message.Message):
    __slots__ = ("path", "reason")
    PATH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    path: str
    reason: str
    def __init__(self, path: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReloadModelsResponse(_message.Message):
    __slots__ = ("loaded", "unloaded", "failures", "scores")
    LOADED_FIELD_NUMBER: _ClassVar[int]
    UNLOADED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    loaded: _containers.RepeatedCompositeFieldContainer[ModelRef]
    unloaded: _containers.RepeatedCompositeFieldContainer[ModelRef]
    failures: _containers.RepeatedCompositeFieldContainer[LoadFailure]
    scores: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, loaded: _Optional[_Iterable[_Union[ModelRef, _Mapping]]] = ..., unloaded: _Optional[_Iterable[_Union[ModelRef, _Mapping]]] = ..., failures: _Optional[_Iterable[_Union[LoadFailure, _Mapping]]] = ..., scores: _Optional[_Iterable[str]] = ...) -> None: ...

class TopNHeader(_message.Message):
    __slots__ = ("by", "n", "where", "options", "base_path", "chunk_contacts", "account")
    BY_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    BASE_PATH_FIELD_NUMBER: _ClassVar[int]
    CHUNK_CONTACTS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    by: str
    n: int
    where: _containers.RepeatedScalarFieldContainer[str]
    options: ScoreOptions
    base_path: str
    chunk_contacts: int
    account: str
    def __init__(self, by: _Optional[str] = ..., n: _Optional[int] = ..., where: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[ScoreOptions, _Mapping]] = ..., base_path: _Optional[str] = ..., chunk_contacts: _Optional[int] = ..., account: _Optional[str] = ...) -> None: ...

class TopNRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: TopNHeader
    chunk: ContactChunk
    def __init__(self, header: _Optional[_Union[TopNHeader, _Mapping]] = ..., chunk: _Optional[_Union[ContactChunk, _Mapping]] = ...) -> None: ...

class TopNResponse(_message.Message):
    __slots__ = ("rows", "contacts", "scanned", "matched", "models")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    SCANNED_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    contacts: bytes
    scanned: int
    matched: int
    models: _containers.RepeatedCompositeFieldContainer[ModelRef]
    def __init__(self, rows: _Optional[int] = ..., contacts: _Optional[bytes] = ..., scanned: _Optional[int] = ..., matched: _Optional[int] = ..., models: _Optional[_Iterable[_Union[ModelRef, _Mapping]]] = ...) -> None: ...
