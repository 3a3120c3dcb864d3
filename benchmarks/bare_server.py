"""The floor for a real-time call: a bare grpcio + ONNX Runtime server, nothing of scorecast's.

    python benchmarks/bare_server.py MODEL.onnx [MODEL.onnx ...] [--port 0] [--max-workers 16]
        [--api FEATURES.npy]

Prints ``PORT <n>`` once it serves. One unary method, ``/bare.Bare/Run``, raw bytes both ways
(no protobuf, no Arrow): the request is float32 feature rows, each row the models' inputs side
by side (features precomputed by the caller); the response, every model's array outputs'
bytes. Each request runs every model once, as a scorecast ``ScoreBatch`` naming the same
scores does. ONNX Runtime on CPU with the session settings of scorecast's server (its default
thread counts, no spinning), a grpcio thread pool as large as the scorecast server's.

``--api FEATURES.npy``: the API floor, the least any server of scorecast's API must do. It serves
``scorecast.v1.Scorecast/ScoreBatch`` itself (the generated protobuf classes are all it takes
of scorecast): decodes every table of the request from Arrow IPC and validates it fully, runs
the models on precomputed feature rows (row ``i`` of FEATURES.npy for the request's ``i``-th
contact: no feature code), and answers an Arrow IPC batch of ``contact_id`` and one column per
output column. What scorecast takes beyond it is its own code; what it takes beyond the bare
floor is the API's Arrow and protobuf encoding.
"""

from __future__ import annotations

import argparse
from concurrent import futures

import grpc
import numpy as np
import onnxruntime as ort
import pyarrow as pa

METHOD = "/bare.Bare/Run"
API_METHOD = "/scorecast.v1.Scorecast/ScoreBatch"


def _session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="ONNX files, run in this order on each request")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: any free one)")
    parser.add_argument("--max-workers", type=int, default=16, help="grpcio handler threads (default 16)")
    parser.add_argument("--api", type=str, default=None, metavar="FEATURES.npy", help="serve ScoreBatch as the API floor")
    args = parser.parse_args()

    sessions = [_session(path) for path in args.models]
    inputs = [(s, s.get_inputs()[0].name, int(s.get_inputs()[0].shape[1])) for s in sessions]
    width = sum(w for _, _, w in inputs)

    def run(request: bytes, context: grpc.ServicerContext) -> bytes:
        x = np.frombuffer(request, np.float32).reshape(-1, width)
        out, at = [], 0
        for session, name, w in inputs:
            results = session.run(None, {name: np.ascontiguousarray(x[:, at : at + w])})
            out += [r.tobytes() for r in results if isinstance(r, np.ndarray)]
            at += w
        return b"".join(out)

    limit = 256 * 1024 * 1024
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.max_workers),
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )
    if args.api is None:
        handler = grpc.method_handlers_generic_handler("bare.Bare", {"Run": grpc.unary_unary_rpc_method_handler(run)})
    else:
        handler = _api_handler(inputs, np.load(args.api))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"PORT {port}", flush=True)
    server.wait_for_termination()


def _api_handler(inputs: list[tuple[ort.InferenceSession, str, int]], features: np.ndarray) -> grpc.GenericRpcHandler:
    """ScoreBatch with Arrow in and out and precomputed features (see ``--api``)."""
    from scorecast.proto import pb

    options = pa.ipc.IpcWriteOptions()

    def score_batch(request: pb.ScoreBatchRequest, context: grpc.ServicerContext) -> pb.ScoreBatchResponse:
        tables = {}
        for name, data in request.chunk.tables.items():
            with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
                tables[name] = reader.read_all()
            tables[name].validate(full=True)
        ids = tables["contacts"]["contact_id"].combine_chunks()
        n = len(ids)
        x, at = features[:n], 0
        names, arrays = ["contact_id"], [ids]
        for session, name, w in inputs:
            for k, result in enumerate(session.run(None, {name: np.ascontiguousarray(x[:, at : at + w])})):
                if isinstance(result, np.ndarray):
                    matrix = result.reshape(n, -1)
                    names += [f"{name}.{k}.{j}" for j in range(matrix.shape[1])]
                    arrays += [pa.array(matrix[:, j]) for j in range(matrix.shape[1])]
            at += w
        batch = pa.RecordBatch.from_arrays(arrays, names=names)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema, options=options) as writer:
            writer.write_batch(batch)
        return pb.ScoreBatchResponse(rows=n, scores=sink.getvalue().to_pybytes())

    method = grpc.unary_unary_rpc_method_handler(
        score_batch, pb.ScoreBatchRequest.FromString, pb.ScoreBatchResponse.SerializeToString
    )
    return grpc.method_handlers_generic_handler("scorecast.v1.Scorecast", {"ScoreBatch": method})


if __name__ == "__main__":
    main()
