"""Open Inference Protocol tensors <-> Arrow tables (server/oip.py's converter).

An input tensor is one column, named ``<table>.<column>`` and 1-D, of a table of
scorecast.tables.TABLES: ids INT64 (or BYTES for string ids), timestamps INT64 microseconds
since the epoch (UTC), numbers FP64 or FP32, strings BYTES, flags BOOL, and a list column
(``campaigns.keywords``) BYTES with each element a JSON array of strings. The tensors of one
table must be equally long. Each output column of a scored batch becomes one tensor; nulls are
NaN (floats), empty bytes (categories) and the type's minimum (INT32, timestamps as INT64).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from scorecast.proto import oip
from scorecast.tables import TABLES

from .errors import InvalidArgument, ResourceExhausted
from .limits import DecodeBudget

__all__ = ["INPUT_DATATYPES", "encode_outputs", "output_datatype", "tables_from_request"]

INPUT_DATATYPES = {"id": "INT64", "timestamp": "INT64", "float": "FP64", "string": "BYTES", "bool": "BOOL", "list<string>": "BYTES"}
"""The datatype ModelMetadata states for each column kind of scorecast.tables."""
_ACCEPTED = {"id": ("INT64", "BYTES"), "timestamp": ("INT64",), "float": ("FP64", "FP32"), "string": ("BYTES",), "bool": ("BOOL",),
             "list<string>": ("BYTES",)}
_NUMPY = {"INT64": "<i8", "INT32": "<i4", "FP64": "<f8", "FP32": "<f4", "BOOL": "?"}
_TYPED = {"INT64": "int64_contents", "INT32": "int_contents", "FP64": "fp64_contents", "FP32": "fp32_contents", "BOOL": "bool_contents",
          "BYTES": "bytes_contents"}
_OUTPUT_DATATYPES = {"float32": "FP32", "float64": "FP64", "int32": "INT32", "category": "BYTES", "timestamp": "INT64"}
_LENGTH = struct.Struct("<I")


def output_datatype(dtype: str) -> str:
    """The tensor datatype of a model output of ``dtype`` (scorecast.metadata.OutputSpec.dtype)."""
    return _OUTPUT_DATATYPES[dtype]


def _kind(table: str, column: str, where: str) -> str:
    if table not in TABLES:
        raise InvalidArgument(where, f"{table}.{column}", f"input names are <table>.<column> with a table of {sorted(TABLES)}")
    spec = TABLES[table]
    if column in spec.columns:
        return spec.columns[column]
    if table == "contacts":  # any attribute column
        return "any"
    raise InvalidArgument(where, f"{table}.{column}", f"{table} has the columns {sorted(spec.columns)}")


def _bytes_elements(raw: bytes, where: str) -> list[bytes]:
    out, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise InvalidArgument(where, f"{len(raw) - at} trailing bytes", "each BYTES element is a 4-byte little-endian length, then the bytes")
        (size,) = _LENGTH.unpack_from(raw, at)
        at += 4
        if at + size > len(raw):
            raise InvalidArgument(where, f"an element of {size} bytes with {len(raw) - at} left", "the raw contents end inside an element")
        out.append(raw[at : at + size])
        at += size
    return out


def _values(tensor: Any, raw: bytes | None, where: str) -> np.ndarray | list[bytes]:
    datatype = tensor.datatype
    if raw is not None:
        if datatype == "BYTES":
            return _bytes_elements(raw, where)
        itemsize = np.dtype(_NUMPY[datatype]).itemsize
        if len(raw) % itemsize:
            raise InvalidArgument(where, f"{len(raw)} raw bytes", f"{datatype} elements take {itemsize} bytes each")
        return np.frombuffer(raw, dtype=_NUMPY[datatype])
    typed = getattr(tensor.contents, _TYPED[datatype])
    return list(typed) if datatype == "BYTES" else np.asarray(typed, dtype=_NUMPY[datatype])


def _column(kind: str, datatype: str, values: np.ndarray | list[bytes], where: str) -> pa.Array:
    if datatype != "BYTES":
        array = pa.array(values)
        return array.cast(pa.timestamp("us", tz="UTC")) if kind == "timestamp" else array
    try:
        if kind == "list<string>":
            return pa.array([json.loads(v) for v in values], type=pa.list_(pa.string()))
        return pa.array([v.decode() for v in values], type=pa.string())
    except (UnicodeDecodeError, ValueError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        wanted = "a JSON array of strings" if kind == "list<string>" else "UTF-8 text"
        raise InvalidArgument(where, f"an element that is not {wanted}", str(exc).splitlines()[0]) from None


def tables_from_request(request: oip.ModelInferRequest, budget: DecodeBudget) -> dict[str, pa.Table]:
    """The request's input tensors as Arrow tables by name; raw or typed contents, checked
    against the column kinds and ``budget`` (one chunk's rows and bytes)."""
    raws: Sequence[bytes] = request.raw_input_contents
    if raws and len(raws) != len(request.inputs):
        raise InvalidArgument("raw_input_contents", f"{len(raws)} entries", f"one per input: {len(request.inputs)}")
    size = sum(len(r) for r in raws)
    if size > budget.max_bytes:  # before anything is decoded; the tables are checked again below
        raise ResourceExhausted("bytes of raw_input_contents", size, budget.max_bytes, budget.bytes_setting)
    columns: dict[str, dict[str, pa.Array]] = {}
    for i, tensor in enumerate(request.inputs):
        where = f"inputs[{tensor.name!r}]"
        table, dot, column = tensor.name.partition(".")
        if not dot:
            raise InvalidArgument(where, tensor.name, "input names are <table>.<column>, e.g. orders.amount")
        kind = _kind(table, column, where)
        accepted = _ACCEPTED.get(kind, tuple(_NUMPY) + ("BYTES",))
        if tensor.datatype not in accepted:
            raise InvalidArgument(f"{where}.datatype", tensor.datatype, f"{tensor.name} takes {' or '.join(accepted)}")
        if len(tensor.shape) != 1:
            raise InvalidArgument(f"{where}.shape", list(tensor.shape), "inputs are 1-D: shape [n]")
        values = _values(tensor, raws[i] if raws else None, where)
        if len(values) != tensor.shape[0]:
            raise InvalidArgument(f"{where}.shape", list(tensor.shape), f"the contents hold {len(values)} elements")
        if column in columns.setdefault(table, {}):
            raise InvalidArgument(where, tensor.name, "each input is sent once")
        columns[table][column] = _column(kind, tensor.datatype, values, where)
    tables: dict[str, pa.Table] = {}
    for name, arrays in columns.items():
        lengths = {c: len(a) for c, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise InvalidArgument(f"inputs of table {name!r}", lengths, "the tensors of one table are equally long")
        tables[name] = pa.table(arrays)
    budget.fresh().check_read(tables, "inputs")
    return tables


def _null_filled(column: pa.Array) -> tuple[str, np.ndarray | list[bytes]]:
    kind = column.type
    if pa.types.is_dictionary(kind):
        return "BYTES", [b"" if v is None else v.encode() for v in column.cast(pa.string()).to_pylist()]
    if pa.types.is_string(kind):
        return "BYTES", [v.encode() for v in column.to_pylist()]
    if pa.types.is_timestamp(kind):
        column = column.cast(pa.int64())
    if pa.types.is_floating(kind):
        return ("FP32" if kind == pa.float32() else "FP64"), column.to_numpy(zero_copy_only=False)
    numpy = np.dtype(_NUMPY["INT64" if pa.types.is_timestamp(kind) or kind == pa.int64() else "INT32"])
    filled = column.fill_null(np.iinfo(numpy).min) if column.null_count else column
    return ("INT64" if numpy.itemsize == 8 else "INT32"), filled.to_numpy(zero_copy_only=False).astype(numpy, copy=False)


def encode_outputs(batch: pa.RecordBatch, wanted: Sequence[str], response: oip.ModelInferResponse) -> None:
    """Add the ``wanted`` columns of ``batch`` (all when empty) to ``response`` as raw output tensors."""
    names = list(wanted) or batch.schema.names
    for name in names:
        column = batch.column(name)
        datatype, values = _null_filled(column)
        if datatype == "BYTES":
            raw = b"".join(_LENGTH.pack(len(v)) + v for v in values)
        else:
            raw = np.ascontiguousarray(values).astype(_NUMPY[datatype], copy=False).tobytes()
        response.outputs.add(name=name, datatype=datatype, shape=[len(column)])
        response.raw_output_contents.append(raw)
