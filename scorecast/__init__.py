"""scorecast: predictive scores for CRM and marketing-automation platforms.

Subpackages, one per top-level folder of the repository:

- ``scorecast.kernels``  Numba feature kernels over Arrow data (imports nothing of ours)
- ``scorecast.training`` simulation, fitting, ONNX export (imports kernels)
- ``scorecast.server``   gRPC service, model repository, scoring pipeline (imports kernels)
- ``scorecast.proto``    the ``scorecast.v1`` gRPC contract and its generated stubs

The modules here are shared contracts: input tables, model metadata, base folders, the
client and the command line.
"""

__version__ = "0.1.0"
