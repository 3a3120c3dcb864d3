"""Run in .venv-triton (tritonclient needs protobuf < 7): ModelInfer through ``tritonclient.grpc``.

``python tritonclient_infer.py HOST:PORT MODEL AS_OF_US inputs.npz outputs.npz``: sends every
array of inputs.npz as the input tensor of its name, writes every output tensor to outputs.npz.
Imports nothing of scorecast: it is the separate client process a KServe user would run.
"""

from __future__ import annotations

import sys

import numpy as np
import tritonclient.grpc as grpcclient

DATATYPES = {"i": "INT64", "f": "FP64", "O": "BYTES", "b": "BOOL"}


def main(url: str, model: str, as_of_us: str, inputs_path: str, outputs_path: str) -> int:
    client = grpcclient.InferenceServerClient(url)
    assert client.is_server_live() and client.is_model_ready(model)
    metadata = client.get_model_metadata(model)
    arrays = dict(np.load(inputs_path, allow_pickle=True))
    inputs = []
    for tensor in metadata.inputs:
        values = arrays[tensor.name]
        infer_input = grpcclient.InferInput(tensor.name, list(values.shape), DATATYPES[values.dtype.kind])
        infer_input.set_data_from_numpy(values)
        inputs.append(infer_input)
    result = client.infer(model, inputs, parameters={"as_of": int(as_of_us)})
    names = [tensor.name for tensor in metadata.outputs]
    np.savez(outputs_path, **{name: result.as_numpy(name) for name in names})
    print(f"{model} {result.get_response().model_version}: {len(names)} outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
