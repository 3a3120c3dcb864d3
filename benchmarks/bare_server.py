"""The floor for a real-time call: a bare grpcio + ONNX Runtime server, nothing of scorecast's.

    python benchmarks/bare_server.py MODEL.onnx [MODEL.onnx ...] [--port 0] [--max-workers 16]

Prints ``PORT <n>`` once it serves. One unary method, ``/bare.Bare/Run``, raw bytes both ways
(no protobuf, no Arrow): the request is float32 feature rows, each row the models' inputs side
by side (features precomputed by the caller); the response, every model's array outputs'
bytes. Each request runs every model once, as a scorecast ``ScoreBatch`` naming the same
scores does. ONNX Runtime on CPU with the session settings of scorecast's server (its default
thread counts, no spinning), a grpcio thread pool as large as the scorecast server's.
"""

from __future__ import annotations

import argparse
from concurrent import futures

import grpc
import numpy as np
import onnxruntime as ort

METHOD = "/bare.Bare/Run"


def _session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="ONNX files, run in this order on each request")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: any free one)")
    parser.add_argument("--max-workers", type=int, default=16, help="grpcio handler threads (default 16)")
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
    handler = grpc.method_handlers_generic_handler("bare.Bare", {"Run": grpc.unary_unary_rpc_method_handler(run)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"PORT {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
