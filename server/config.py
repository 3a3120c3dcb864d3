"""The one configuration path of the server: defaults, then ``SCORECAST_*`` variables, then flags.

Every field has a default and a one-line doc where it is declared. ``ServerSettings.load``
is the only constructor the entry points use, so a setting means the same thing whether it
comes from the environment (containers) or the command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from scorecast.proto import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["DEVICES", "ServerSettings"]

DEVICES = ("cpu", "cuda")
ENV_PREFIX = "SCORECAST_"


@dataclass(frozen=True)
class ServerSettings:
    """Server-wide settings; see each field's comment."""

    models: Path = Path("models")
    """Model repository: a folder of ``<score>/<version>.onnx`` files."""
    host: str = "127.0.0.1"
    """Address to listen on (``0.0.0.0`` in a container)."""
    port: int = 50051
    """Port to listen on; 0 picks a free one."""
    device: str = "cpu"
    """ONNX Runtime execution provider: ``cpu`` or ``cuda`` (error at start if unavailable)."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """gRPC send and receive limit per message, both ways."""
    max_rows_per_chunk: int = 2_000_000
    """Most contacts one chunk (or one ScoreBatch) may hold; more is RESOURCE_EXHAUSTED."""
    max_rows_per_request: int = 500_000_000
    """Most contacts one Score stream may hold in total; more is RESOURCE_EXHAUSTED."""
    max_workers: int = 8
    """gRPC handler threads: the most requests served at once."""
    intra_op_threads: int = 0
    """ONNX Runtime threads per session run; 0 lets ONNX Runtime use every core."""
    grace_s: float = 30.0
    """On SIGTERM, how long in-flight requests may take to finish."""
    port_file: Path | None = None
    """If set, the bound port is written there once the server is ready (for port 0)."""

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        for name in ("max_message_bytes", "max_rows_per_chunk", "max_rows_per_request", "max_workers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port!r}")

    @classmethod
    def load(cls, env: dict[str, str] | None = None, **overrides: Any) -> ServerSettings:
        """Defaults, then ``SCORECAST_<FIELD>`` environment variables, then non-None overrides."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, raw, cls.__dataclass_fields__[f.name].default)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


def _parse(name: str, raw: str, default: Any) -> Any:
    """Parse an environment value to the type of the field's default."""
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path) or name.endswith("_file"):
            return Path(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {type(default).__name__}") from None
    return raw
