"""The entry points: the ``scorecast`` command line and the demo it runs.

They are the only modules of the ``scorecast`` package that import ``server`` and ``training``
(``tests/test_packaging.py`` enforces it); the modules beside this folder are the shared bottom
layer that kernels' users, training and the server all build on.

- ``commands``  the argument parser and one ``cmd_<name>`` per subcommand
- ``demo``      ``scorecast demo``: simulate, train, serve, score over gRPC, print a summary
- ``fleet``     ``scorecast fleet train|rescore|promote``: the nightly jobs over every account
"""

from .commands import build_parser, main, parse_as_of

__all__ = ["build_parser", "main", "parse_as_of"]
