"""scorecast: predictive scores for CRM and marketing-automation platforms.

Subpackages, one per top-level folder of the repository:

- ``scorecast.kernels``  Numba feature kernels over Arrow data (imports nothing of ours)
- ``scorecast.training`` simulation, fitting, ONNX export (imports kernels)
- ``scorecast.server``   gRPC service, model repository, scoring pipeline (imports kernels)
- ``scorecast.proto``    the ``scorecast.v1`` gRPC contract and its generated stubs

The modules here are the shared bottom layer (they import kernels and proto, never server or
training): input tables, model metadata (``metadata``), request options (``options``),
account names (``accounts``), the root of the error tree (``errors``), base folders, atomic
writes, the client. ``scorecast.cli`` holds the entry points (the command line and the demo), the only
modules that import server and training; ``tests/test_packaging.py`` enforces the layers.
"""

__version__ = "0.1.0"
