"""scorecast: predictive scores for CRM and marketing-automation platforms.

Subpackages, one per top-level folder of the repository:

- ``scorecast.kernels``  Numba feature kernels over Arrow data (imports nothing of ours)
- ``scorecast.training`` simulation, fitting, ONNX export (imports kernels and the bottom layer)
- ``scorecast.server``   gRPC service, model repository, scoring pipeline (imports kernels and the
  bottom layer)
- ``scorecast.proto``    the ``scorecast.v1`` gRPC contract and its generated stubs
- ``scorecast.cli``      the entry points (see below)

The modules here are the shared bottom layer: they import kernels and proto, never server or
training, and every layer above builds on them. By job:

- ``tables``       the input tables of a customer base: names and columns
- ``base``         a customer base on disk: one ``<table>.parquet`` per table, read in chunks
- ``spill``        a base's partitions held in memory or spilled to a temp folder
- ``as_of``        a request's reference time when the caller gives none
- ``filters``      the TopN filter language: ``column op value`` clauses
- ``metadata``     the one model-metadata format an ONNX file carries (typed ``ModelParams``)
- ``options``      the one request-options contract: every option, its readers and defaults
- ``accounts``     account names: the default account, the name check, an account's folder
- ``errors``       the root of the error tree (``ScorecastError``, ``InvalidArgument``)
- ``model_store``  the model repository on disk: ``<root>/<score>/<version>.onnx``
- ``onnx_graph``   building ONNX graphs by hand, one IR version and opset policy
- ``atomic``       atomic writes: a file or folder appears whole, or not at all
- ``client``       the Python client of the scorecast.v1 gRPC API
- ``process``      ``scorecast serve`` in a child process (demo, benchmarks, end-to-end tests)

``scorecast.cli`` holds the entry points (the command line and the demo), the only modules
that import server and training; ``tests/test_packaging.py`` enforces the layers.
"""

__version__ = "0.1.0"
