"""The ``scorecast.v1`` gRPC contract: proto/scorecast.proto and its generated stubs.

The stubs are committed; ``make proto`` regenerates them and a test fails when they are stale.
"""

from . import scorecast_pb2 as pb
from . import scorecast_pb2_grpc as rpc

SERVICE_NAME = "scorecast.v1.Scorecast"

# Both ends set their gRPC message limits explicitly (grpc's 4 MiB default refuses ordinary
# chunks); a chunk message is meant to be ~8 MB, well under this.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "SERVICE_NAME", "pb", "rpc"]
