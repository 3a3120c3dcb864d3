"""The gRPC contracts and their generated stubs: ``scorecast.v1`` (proto/scorecast.proto, as
``pb``/``rpc``) and the Open Inference Protocol (proto/open_inference.proto, as ``oip``/``oip_rpc``).

The stubs are committed; ``make proto`` regenerates them and a test fails when they are stale.
"""

from . import scorecast_pb2 as pb
from . import open_inference_pb2 as oip
from . import open_inference_pb2_grpc as oip_rpc
from . import scorecast_pb2_grpc as rpc

SERVICE_NAME = "scorecast.v1.Scorecast"
OIP_SERVICE_NAME = "inference.GRPCInferenceService"

# Both ends set their gRPC message limits explicitly (grpc's 4 MiB default refuses ordinary
# chunks); a chunk message is meant to be ~8 MB, well under this.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "OIP_SERVICE_NAME", "SERVICE_NAME", "oip", "oip_rpc", "pb", "rpc"]
