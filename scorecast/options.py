"""Request options: the one definition of every option a scoring request takes, and every way
one is read.

A request is a :class:`ScoreSpec`: the header's ``scores`` and ``account``, and one field per
option of ``ScoreOptions`` (proto/scorecast.proto), each declared with :func:`option`: its
kind (the wire and Python types, the unset value), its range, the scores that read it and its
help. Every reader goes over those declarations, so no reader names an option:

    source                   reader                                  called by
    native header            spec_from_header(header)                server/servicer.py, rescore
    Python values            score_options(**values) -> ScoreOptions  scorecast/client.py (keywords)
    Open Inference Protocol  spec_from_parameters(score, version, …)  server/oip.py
    command line             add_option_flags(parser), option_values  scorecast/cli/commands.py
    the model's defaults     request_columns(meta, spec)             server/pipeline.py, training's probe

Python values (the client's keywords, the CLI's) become a ``ScoreOptions`` message and every
spec is read from one, so each source gives the same spec. Ranges are checked when a spec is
made (:class:`ScoreSpec`), as ``InvalidArgument`` naming ``options.<name>``.

An option that a model takes as a feature ``request:<name>`` (``ModelParams.request_defaults``)
is a number: unset (0, or None for a bool with presence) means the model's default.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf.timestamp_pb2 import Timestamp

from scorecast.accounts import DEFAULT_ACCOUNT
from scorecast.errors import InvalidArgument
from scorecast.metadata import REQUEST_PREFIX
from scorecast.proto import pb

if TYPE_CHECKING:
    from scorecast.metadata import ModelMetadata

__all__ = [
    "MAX_HORIZON_DAYS",
    "OPTIONS",
    "Option",
    "ScoreSpec",
    "add_option_flags",
    "as_of_from_header",
    "option_values",
    "parse_as_of",
    "request_columns",
    "score_options",
    "spec_from_header",
    "spec_from_parameters",
]

MAX_HORIZON_DAYS = 3650


# --- kinds: how one type of option travels -------------------------------------------------


class _Kind:
    """One type of option: its wire form, Python form, OIP parameter and flag."""

    unset: Any = None
    """The spec's value when the request leaves the option out."""
    parameter: str = ""
    """What an Open Inference Protocol parameter must be (empty: not a parameter)."""

    def from_proto(self, options: pb.ScoreOptions, name: str) -> Any:
        return getattr(options, name)

    def to_proto(self, options: pb.ScoreOptions, name: str, value: Any) -> None:
        setattr(options, name, value)

    def from_parameter(self, value: Any) -> Any:
        """The Python value of an OIP parameter's value; None when it has the wrong type."""
        raise NotImplementedError

    def flag(self, text: str) -> Any:
        """The Python value of a command-line argument (argparse ``type``)."""
        raise NotImplementedError


class _Timestamp(_Kind):
    """A time: a ``Timestamp`` on the wire, µs since the epoch in the spec; unset means now.
    Python: a timezone-aware datetime or int µs; OIP: an ISO-8601 string or INT64 µs."""

    parameter = "an ISO-8601 string or INT64 µs since the epoch"

    def from_proto(self, options: pb.ScoreOptions, name: str) -> int:
        if not options.HasField(name):
            return time.time_ns() // 1_000
        stamp = getattr(options, name)
        return stamp.seconds * 1_000_000 + stamp.nanos // 1_000

    def to_proto(self, options: pb.ScoreOptions, name: str, value: Any) -> None:
        stamp = Timestamp()
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware, got {value!r}")
            stamp.FromDatetime(value)
        else:  # µs since the epoch, floor-divided so negative times keep nanos in [0, 1e9)
            stamp.seconds, micros = divmod(int(value), 1_000_000)
            stamp.nanos = micros * 1_000
        getattr(options, name).CopyFrom(stamp)

    def from_parameter(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if not isinstance(value, str):
            return None
        try:
            return parse_time(value)
        except ValueError:
            raise InvalidArgument("parameters['as_of']", value, "an ISO-8601 time, e.g. 2026-01-01T00:00:00Z, or INT64 µs") from None

    def flag(self, text: str) -> dt.datetime:
        return parse_as_of(text)


class _Int(_Kind):
    unset = 0
    parameter = "an int64 parameter"

    def from_parameter(self, value: Any) -> Any:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def flag(self, text: str) -> int:
        return int(text)


class _Float(_Kind):
    unset = 0.0
    parameter = "a double parameter"

    def from_parameter(self, value: Any) -> Any:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    def flag(self, text: str) -> float:
        return float(text)


class _OptionalBool(_Kind):
    """A bool with presence (``optional bool``): false is an answer, unset is None."""

    parameter = "a bool parameter"

    def from_proto(self, options: pb.ScoreOptions, name: str) -> bool | None:
        return getattr(options, name) if options.HasField(name) else None

    def to_proto(self, options: pb.ScoreOptions, name: str, value: Any) -> None:
        if value is not None:
            setattr(options, name, value)

    def from_parameter(self, value: Any) -> Any:
        return value if isinstance(value, bool) else None


class _Names(_Kind):
    """Names (``repeated string``); OIP and the command line: comma-separated."""

    unset = ()
    parameter = "a comma-separated string"

    def from_proto(self, options: pb.ScoreOptions, name: str) -> tuple[str, ...]:
        return tuple(getattr(options, name))

    def to_proto(self, options: pb.ScoreOptions, name: str, value: Any) -> None:
        getattr(options, name).extend(value)

    def from_parameter(self, value: Any) -> Any:
        return [g for g in value.split(",") if g] if isinstance(value, str) else None

    def flag(self, text: str) -> list[str]:
        return [s.strip() for s in text.split(",") if s.strip()]


class _Versions(_Kind):
    """Score -> version (``map<string, string>``); not an OIP parameter (the request's
    ``model_version`` is); the command line: ``score=version,...``."""

    def from_proto(self, options: pb.ScoreOptions, name: str) -> dict[str, str]:
        return dict(getattr(options, name))

    def to_proto(self, options: pb.ScoreOptions, name: str, value: Any) -> None:
        getattr(options, name).update(value)

    def flag(self, text: str) -> dict[str, str]:
        pairs = [p.strip() for p in text.split(",") if p.strip()]
        if not all("=" in p for p in pairs):
            raise argparse.ArgumentTypeError(f"expected SCORE=VERSION[,SCORE=VERSION...], got {text!r}")
        return dict(p.split("=", 1) for p in pairs)


TIMESTAMP, INT, FLOAT, OPTIONAL_BOOL, NAMES, VERSIONS = _Timestamp(), _Int(), _Float(), _OptionalBool(), _Names(), _Versions()


# --- the options ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One request option: everything every reader needs to know about it."""

    name: str
    """Its name on the wire (a ``ScoreOptions`` field), in OIP parameters, Python keywords, and
    (with dashes) on the command line."""
    kind: _Kind
    help: str
    scores: tuple[str, ...]
    """The scores that read it; empty: every score."""
    check: Callable[[Any], str | None] = lambda value: None
    """None when a spec value (unset included) is allowed, else the allowed range."""
    model_fallback: Callable[[ModelMetadata], float | None] = lambda meta: None
    """The model's default when its ``request_defaults`` has none."""
    off_flag: str = ""
    """For a bool: the flag that sets it false (default ``--no-<name>``)."""
    attr: str = ""
    """Its ScoreSpec attribute (``as_of_us`` for ``as_of``; else its name)."""

    def is_set(self, value: Any) -> bool:
        """Whether a spec value is a request's answer rather than "unset" (0, None, empty)."""
        return value is not None and (isinstance(value, bool) or bool(value))


def option(kind: _Kind, help: str, scores: tuple[str, ...] = (), **more: Any) -> Any:
    """A ScoreSpec field that is a request option (see :class:`Option`)."""
    metadata = {"option": {"kind": kind, "help": help, "scores": scores, **more}}
    if kind is TIMESTAMP:  # required: the reader resolves "unset" to now
        return field(metadata=metadata)
    if kind is VERSIONS:
        return field(default_factory=dict, metadata=metadata)
    return field(default=kind.unset, metadata=metadata)


def _open_unit(value: float) -> str | None:
    return None if 0 < value < 1 else "must be in (0, 1) (0: the model's default)"


def _half_open_unit(value: float) -> str | None:
    return None if 0 <= value < 1 else "must be in [0, 1) (0: the model's default)"  # also refuses NaN


@dataclass(frozen=True)
class ScoreSpec:
    """What a request asks for: its scores, its account and its options (``ScoreOptions``).

    Adding an option: one field here, declared with :func:`option`, and the field of the same
    name in ``ScoreOptions`` (proto/scorecast.proto); every reader follows.
    """

    scores: tuple[str, ...]
    as_of_us: int = option(TIMESTAMP, "reference time every score is computed as of (default: now)", name="as_of")
    horizon_days: int = option(
        INT,
        "prediction horizon in days (0: the model's own); clv takes any, the others refuse one they were not trained for",
        ("clv", "affinity", "cross_sell", "engagement", "promo_appetence", "lead"),
        check=lambda v: None if 0 <= v <= MAX_HORIZON_DAYS else f"must be in 0..{MAX_HORIZON_DAYS} (0: the model's own)",
        model_fallback=lambda meta: meta.horizon_days,
    )
    product_groups: tuple[str, ...] = option(NAMES, "product groups to return, comma-separated (default: all)", ("affinity", "cross_sell"))
    model_versions: Mapping[str, str] = option(VERSIONS, "model version per score, SCORE=VERSION,... (default: each score's newest)")
    churn_threshold: float = option(
        FLOAT, "churn: the chance of any order in the next 365 days under which, with no new order, a contact counts as lapsed (0: the model's default, learned at training)", ("churn", "clv"), check=lambda v: None if not v else _open_unit(v)
    )
    exclude_bought: bool | None = option(
        OPTIONAL_BOOL, "leave out the SKUs the contact already bought (default: what the model learned)", ("recommendations",), off_flag="--include-bought"
    )
    uplift_threshold: float = option(
        FLOAT, "|uplift| above which a contact is persuadable / do-not-disturb (0: the model's default, 0.05)", ("promo_appetence",), check=_half_open_unit
    )
    buy_threshold: float = option(
        FLOAT, "P(buy | no promo) from which a contact is a sure thing (0: the model's default, 0.5)", ("promo_appetence",), check=_half_open_unit
    )
    account: str = DEFAULT_ACCOUNT
    """The account whose models score it (a header field, not an option; see scorecast.accounts)."""

    def __post_init__(self) -> None:
        for opt in OPTIONS:
            value = getattr(self, opt.attr)
            why = opt.check(value)
            if why:
                raise InvalidArgument(f"options.{opt.name}", value, why)

    def request_option(self, name: str, meta: ModelMetadata) -> float:
        """The value of a ``request:<name>`` feature: the request's option, else the model's default."""
        opt = _FILLED.get(name)
        if opt is None:
            raise InvalidArgument(f"{meta.score} feature", f"{REQUEST_PREFIX}{name}", f"this server fills only {', '.join(_FILLED)}")
        value = getattr(self, opt.attr)
        if opt.is_set(value):
            return float(value)
        defaults = meta.params.request_defaults or {}
        default = defaults[name] if name in defaults else opt.model_fallback(meta)
        if default is None:
            raise InvalidArgument(f"options.{name}", 0, f"{meta.score} version {meta.version} has no default for it: set it")
        return float(default)


def _declared(f: dataclasses.Field) -> Option:
    declared = dict(f.metadata["option"])
    return Option(name=declared.pop("name", f.name), attr=f.name, **declared)


OPTIONS: tuple[Option, ...] = tuple(_declared(f) for f in dataclasses.fields(ScoreSpec) if "option" in f.metadata)
"""Every request option, in ``ScoreOptions`` order."""
_BY_NAME = {opt.name: opt for opt in OPTIONS}
_AS_OF = next(opt for opt in OPTIONS if opt.attr == "as_of_us")
_FILLED = {opt.name: opt for opt in OPTIONS if opt.kind in (INT, FLOAT, OPTIONAL_BOOL)}
"""The options a model may take as ``request:<name>`` features: the numbers."""
_PARAMETERS = {opt.name: opt for opt in OPTIONS if opt.kind.parameter}
"""The options an Open Inference Protocol request may give as parameters."""


# --- readers --------------------------------------------------------------------------------


def spec_from_header(header: pb.ScoreHeader) -> ScoreSpec:
    """The spec of a ``ScoreHeader`` (a TopN header's scores, options and account: put them in one)."""
    values = {opt.attr: opt.kind.from_proto(header.options, opt.name) for opt in OPTIONS}
    return ScoreSpec(scores=tuple(header.scores), account=header.account, **values)


def as_of_from_header(header: pb.ScoreHeader) -> int:
    """The header's ``as_of`` as ``spec_from_header`` reads it: µs since the epoch, now when unset."""
    return _AS_OF.kind.from_proto(header.options, _AS_OF.name)


def score_options(**values: Any) -> pb.ScoreOptions:
    """``ScoreOptions`` from Python values (keywords named as the options; None or absent: unset).

    ``as_of``: a timezone-aware datetime or int µs; the names: sequences; ``model_versions``: a
    mapping. Unknown names are a TypeError (as a keyword argument would be).
    """
    unknown = sorted(set(values) - set(_BY_NAME))
    if unknown:
        raise TypeError(f"unknown options {unknown}; the options are {list(_BY_NAME)}")
    message = pb.ScoreOptions()
    for name, value in values.items():
        if value is None:
            continue
        try:
            _BY_NAME[name].kind.to_proto(message, name, value)
        except (TypeError, ValueError) as exc:  # a naive datetime; protobuf's checks (an int32 out of range, a type)
            raise InvalidArgument(f"options.{name}", value, str(exc)) from None
    return message


def spec_from_parameters(score: str, version: str, parameters: Mapping[str, Any], account: str = DEFAULT_ACCOUNT) -> ScoreSpec:
    """The spec of one Open Inference Protocol ModelInfer: its model, version and parameters
    (``{name: InferParameter}``; options named as in ``ScoreOptions``)."""
    given = {name: _parameter(value) for name, value in parameters.items()}
    unknown = sorted(set(given) - set(_PARAMETERS))
    if unknown:
        raise InvalidArgument("parameters", unknown, f"known parameters are {sorted(_PARAMETERS)}")
    values = {}
    for name, raw in given.items():
        value = _PARAMETERS[name].kind.from_parameter(raw)
        if value is None:
            raise InvalidArgument(f"parameters[{name!r}]", raw, _PARAMETERS[name].kind.parameter)
        values[name] = value
    options = score_options(**values, model_versions={score: version} if version else None)
    return spec_from_header(pb.ScoreHeader(scores=[score], options=options, account=account))


def _parameter(value: Any) -> Any:
    kind = value.WhichOneof("parameter_choice")
    return None if kind is None else getattr(value, kind)


def add_option_flags(parser: argparse.ArgumentParser, as_of_help: str) -> None:
    """One flag per option (``--horizon-days``, ...; a bool gets its on and off flags), with the
    option's help; ``as_of_help`` says what an unset ``--as-of`` means for this command."""
    for opt in OPTIONS:
        flag = f"--{opt.name.replace('_', '-')}"
        what = ", ".join(opt.scores) + ": " if opt.scores else ""
        if opt.kind is OPTIONAL_BOOL:
            both = parser.add_mutually_exclusive_group()
            both.add_argument(flag, dest=opt.name, action="store_true", default=None, help=f"{what}{opt.help}")
            both.add_argument(opt.off_flag or f"--no-{opt.name.replace('_', '-')}", dest=opt.name, action="store_false", help=f"{what}the opposite")
            continue
        default = None if opt.kind is TIMESTAMP else opt.kind.unset
        parser.add_argument(flag, dest=opt.name, type=opt.kind.flag, default=default, help=as_of_help if opt.kind is TIMESTAMP else f"{what}{opt.help}")


def option_values(args: argparse.Namespace) -> dict[str, Any]:
    """The options of parsed command-line flags, as Python values (the client's keywords)."""
    return {opt.name: getattr(args, opt.name) for opt in OPTIONS}


def request_columns(meta: ModelMetadata, spec: ScoreSpec | None = None) -> dict[int, float]:
    """``{feature index: value}`` of a model's ``request:<option>`` features for ``spec``
    (None: every option unset, i.e. the model's defaults: training's parity probe)."""
    spec = spec or _UNSET
    return {
        i: spec.request_option(name.removeprefix(REQUEST_PREFIX), meta)
        for i, name in enumerate(meta.features)
        if name.startswith(REQUEST_PREFIX)
    }


_UNSET = ScoreSpec(scores=(), as_of_us=0)


def parse_time(text: str) -> dt.datetime:
    """An ISO-8601 date or time ("Z" allowed); without a zone it is UTC. ValueError otherwise."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_as_of(text: str) -> dt.datetime:
    """A date or ISO 8601 time for ``--as-of``; without a zone it is UTC."""
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r} (e.g. 2026-01-01 or 2026-01-01T12:00:00+00:00)") from None

