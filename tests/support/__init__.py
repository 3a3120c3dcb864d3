"""What the tests and the benchmarks share: generators of models, bases and requests.

- ``fakes``          tiny real ONNX models with scorecast metadata, and ``write_model``
- ``fuzz``           the hostile-request generator (``generate_cases``) and its checker (``run_case``)
- ``affinity_base``  a synthetic affinity base with nonlinear labels

The rule (``tests/test_packaging.py`` enforces it): benchmarks import nothing of ``tests``
but this package, and this package imports no test module, only scorecast and itself. A
generator a benchmark needs moves here, so a benchmark never runs a test module's code.
"""
