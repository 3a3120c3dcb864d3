"""The one configuration path of the server: defaults, then ``SCORECAST_*`` variables, then flags.

Every field has a default and a one-line doc where it is declared. ``ServerSettings.load``
is the only constructor the entry points use, so a setting means the same thing whether it
comes from the environment (containers) or the command line.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from scorecast.proto import DEFAULT_MAX_MESSAGE_BYTES, pb

from .eviction import EVICTION_POLICIES
from .runtime import DEFAULT_MAX_MODEL_BYTES, SessionOptions
from .security import load_tokens
from .tree_gemm import TREE_FORMS

__all__ = ["DEVICES", "ServerSettings", "is_loopback"]

DEVICES = ("cpu", "cuda")
LOG_FORMATS = ("text", "json")
ENV_PREFIX = "SCORECAST_"
DEFAULT_MODEL_MEMORY_BUDGET = 2 * 1024**3
"""2 GiB: an account of five trained scores (rfm, churn, clv, affinity, engagement on a 20k-contact
base) measures 6.4 MB (affinity's trees 3.7 MB, clv 1.7 MB), so ~330 accounts stay loaded, far
more than the hot set of a Zipf-distributed real-time load over 10,000 accounts; a 4 GB container
keeps half of its memory for requests and the server's own ~500 MB."""


@dataclass(frozen=True)
class ServerSettings:
    """Server-wide settings; see each field's comment."""

    models: Path = Path("models")
    """Model repository: ``<account>/<score>/<version>.onnx`` files, or ``<score>/<version>.onnx``
    for one default account (see ``server/repository.py``)."""
    host: str = "127.0.0.1"
    """Address to listen on (``0.0.0.0`` in a container)."""
    port: int = 50051
    """Port to listen on; 0 picks a free one."""
    device: str = "cpu"
    """ONNX Runtime execution provider: ``cpu`` or ``cuda`` (error at start if unavailable)."""
    tree_form: str = "auto"
    """Tree ensembles as ONNX Runtime's TreeEnsemble (``native``), as MatMul/Gather (``gemm``,
    runs on CUDA; parity-checked at load), or ``auto``: gemm on cuda, native on cpu."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """gRPC send and receive limit per message, both ways."""
    max_rows_per_chunk: int = 2_000_000
    """Most contacts one chunk (or one ScoreBatch) may hold; more is RESOURCE_EXHAUSTED."""
    max_rows_per_request: int = 500_000_000
    """Most contacts one Score stream may hold in total; more is RESOURCE_EXHAUSTED."""
    max_decoded_bytes_per_chunk: int = 256 * 1024 * 1024
    """Most bytes the tables of one chunk (or ScoreBatch) may take once decoded and decompressed
    (lz4/zstd IPC); checked from the IPC headers before decompressing; more is RESOURCE_EXHAUSTED."""
    max_event_rows_per_chunk: int = 10_000_000
    """Most rows the tables of one chunk (orders, events, … all together) may hold; more is
    RESOURCE_EXHAUSTED, before any feature work."""
    max_workers: int = 16
    """Most scorecast.v1 calls served at once (one handler thread each); more wait in the queue
    (``max_queued_calls``). A call waiting in a batch holds its slot, so this also bounds a batch:
    16 gave 1.46x the requests/s of 8 with 16 concurrent 1-contact callers, and 32 no more
    (benchmarks/load.py). Health and reflection have threads of their own, so they answer when all are busy."""
    max_queued_calls: int = 256
    """Calls that find every slot held wait for one, first come first served, up to this many at
    once (each holds a pool thread, no CPU); one more is RESOURCE_EXHAUSTED at once. Streams wait
    here for their call slot too, after taking a stream slot. 256: four times the 64 concurrent
    callers that must see no error (benchmarks/load.py)."""
    max_queue_wait_ms: float = 5_000.0
    """Longest a call waits in that queue (or its deadline, if sooner) before RESOURCE_EXHAUSTED.
    5 s: over 30x the p99 latency (145 ms) of 64 concurrent 1-contact callers on a loaded 2-core
    machine (benchmarks/load.py), so only a server overwhelmed for seconds refuses."""
    max_queued_bytes: int = 256 * 1024 * 1024
    """Most request bytes the waiting calls may hold together (a queued call's request is already
    received); a call that would pass it is RESOURCE_EXHAUSTED instead of queued, so a flood of
    large requests cannot fill memory. 256 MiB: four messages of the default 64 MiB limit, and
    tens of thousands of real-time requests (a few KB each)."""
    batch_max_delay_ms: float = 2.0
    """Dynamic batching of ScoreBatch and ModelInfer calls (server/batching.py): how long a batch
    waits for calls on their way before its pass starts; 0 turns batching off (every call scored
    alone). A lone caller never waits: a batch starts at once when no other call is coming. 2 ms:
    under load a batch mostly starts when the previous pass of its key ends (6-8 calls per pass
    with 16 and 64 callers); 1 ms measured the same within the noise (benchmarks/load.py)."""
    batch_max_rows: int = 1024
    """Most contacts in one batched pass; a call of more is scored alone (it gains little from
    company). 1024: far above the 6-8 one-contact calls a pass gathers under load, and a pass of
    it stays a few ms; not tuned further."""
    max_streams: int = 4
    """Most Score and TopN streams open at once (below ``max_workers``, so slow or idle streams
    always leave threads to unary calls); more are RESOURCE_EXHAUSTED at once."""
    idle_timeout_s: float = 60.0
    """A Score or TopN stream that sends no message for this long is ended (DEADLINE_EXCEEDED)."""
    keepalive_s: float = 60.0
    """Seconds between the server's HTTP/2 pings on a connection (dead peers are dropped)."""
    keepalive_timeout_s: float = 20.0
    """How long a keepalive ping may go unanswered before the connection is closed."""
    max_connection_age_s: float = 0.0
    """Connections older than this are asked to go away (GOAWAY; clients reconnect); 0: no limit."""
    max_connection_age_grace_s: float = 300.0
    """After ``max_connection_age_s``, how long calls in flight on the connection may still run."""
    insecure: bool = False
    """Allow serving a non-loopback ``host`` with neither TLS nor tokens (say so explicitly)."""
    max_topn_n: int = 1_000_000
    """Largest ``n`` a TopN call may ask for."""
    max_base_bytes: int = 16 * 1024**3
    """Most bytes on disk of the tables TopN reads from a base by path (``base_path``); more is
    RESOURCE_EXHAUSTED before reading. Each chunk read is held to the per-chunk budgets too."""
    intra_op_threads: int = 0
    """ONNX Runtime threads per session run; 0 lets ONNX Runtime use every core."""
    inter_op_threads: int = 0
    """ONNX Runtime inter-op threads (used only by its parallel executor; 0: its default)."""
    ort_spinning: bool = False
    """Whether ONNX Runtime's intra-op threads spin-wait for work between runs; off by default: on a
    busy or shared CPU the spinning threads take the cores the gRPC, kernel and other threads need
    (benchmarks/load.py: up to 4x the ScoreBatch throughput without spinning on a loaded 2-core machine)."""
    processes: int = 1
    """Server processes accepting on the one port (SO_REUSEPORT, Linux); each loads every model."""
    grace_s: float = 30.0
    """On SIGTERM, how long in-flight requests may take to finish."""
    port_file: Path | None = None
    """If set, the bound port is written there once the server is ready (for port 0)."""
    tls_cert: Path | None = None
    """PEM server certificate (chain); with ``tls_key``, the server speaks TLS only."""
    tls_key: Path | None = None
    """PEM private key of ``tls_cert``; both or neither."""
    tls_client_ca: Path | None = None
    """PEM CA bundle; if set (needs TLS), clients must present a certificate it signed."""
    tokens_file: Path | None = None
    """JSON file of accepted tokens' SHA-256 hashes, names and roles; if set, calls need a token."""
    admin_methods: tuple[str, ...] = ()
    """scorecast.v1 methods (e.g. ``GetModel``; comma-separated in env) that need the admin role
    besides ``ReloadModels``, which always does."""
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES
    """Largest model file loaded; a bigger one is refused (and reported) without being parsed."""
    reload_interval_s: float = 10.0
    """How often the repository folder is checked for new, changed or removed model files; 0: never
    (``ReloadModels`` still works)."""
    metrics_port: int = -1
    """Port of the Prometheus ``/metrics`` endpoint (on ``host``); -1: none, 0: any free port."""
    log_format: str = "text"
    """``text`` or ``json`` (one object per line with the request id), for ``scorecast serve``."""
    base_roots: tuple[Path, ...] = ()
    """Folders under which TopN may read a base by path (comma-separated in env); empty: none."""
    model_memory_budget: int = DEFAULT_MODEL_MEMORY_BUDGET
    """Most bytes the loaded accounts' models may hold, as measured when each loads (ONNX Runtime
    session, weights, tables; ``server/heap.py``), plus the measured peak of the load in progress
    (reserved before it starts); past it the least useful unheld accounts are unloaded
    (``eviction``). Pinned accounts and the default account of a repository without account
    folders count too but never leave. Request memory is not in it (the request limits bound it)."""
    eviction: str = "lfu"
    """Which loaded account leaves first: ``lfu`` (the least often called in real time; bulk
    passes never push out accounts serving real-time calls, ``server/eviction.py``) or ``lru``
    (plain LRU, for comparison)."""
    pinned_accounts: tuple[str, ...] = ()
    """Accounts loaded at start and never evicted (comma-separated in env)."""
    max_calls_per_account: int = 0
    """Most calls of one account in flight at once; more are RESOURCE_EXHAUSTED naming it, so
    one account's flood leaves slots to the others. 0: half of ``max_workers`` (rounded up) in a
    repository with account folders; no cap in one without (one account starves no one)."""
    account_retry_s: float = 5.0
    """After a failed account load, the wait before the next try; doubled on each failure in a
    row, up to 5 minutes. Calls meanwhile are UNAVAILABLE at once, without a load."""
    usage_file: Path | None = None
    """If set, each account's usage (calls, contacts scored, errors, loads) since start is
    written there as JSON lines every ``usage_interval_s`` and at stop (atomic replace)."""
    usage_interval_s: float = 60.0
    """Seconds between two writes of ``usage_file``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_roots", tuple(Path(r) for r in self.base_roots))
        relative = [str(r) for r in self.base_roots if not r.is_absolute()]
        if relative:
            raise ValueError(f"base_roots must be absolute folders, got {relative}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.tree_form not in TREE_FORMS:
            raise ValueError(f"tree_form must be one of {TREE_FORMS}, got {self.tree_form!r}")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {LOG_FORMATS}, got {self.log_format!r}")
        if self.eviction not in EVICTION_POLICIES:
            raise ValueError(f"eviction must be one of {EVICTION_POLICIES}, got {self.eviction!r}")
        if self.max_calls_per_account < 0:
            raise ValueError(f"max_calls_per_account must be >= 0 (0: half of max_workers), got {self.max_calls_per_account!r}")
        if self.reload_interval_s < 0:
            raise ValueError(f"reload_interval_s must be >= 0, got {self.reload_interval_s!r}")
        if not -1 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be in -1..65535, got {self.metrics_port!r}")
        positive = ("max_message_bytes", "max_rows_per_chunk", "max_rows_per_request", "max_workers", "max_model_bytes", "processes",
                    "max_decoded_bytes_per_chunk", "max_event_rows_per_chunk", "max_streams", "max_topn_n", "max_base_bytes", "idle_timeout_s",
                    "keepalive_s", "keepalive_timeout_s", "model_memory_budget", "account_retry_s", "usage_interval_s",
                    "max_queue_wait_ms", "batch_max_rows", "max_queued_bytes")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_streams >= self.max_workers:
            raise ValueError(f"max_streams ({self.max_streams}) must be below max_workers ({self.max_workers}): streams must leave threads to other calls")
        for name in ("max_connection_age_s", "max_connection_age_grace_s", "max_queued_calls", "batch_max_delay_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("intra_op_threads", "inter_op_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: ONNX Runtime's default), got {getattr(self, name)!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port!r}")
        self._check_security()

    @property
    def session_options(self) -> SessionOptions:
        """How the server builds every model's ONNX Runtime session."""
        return SessionOptions(
            device=self.device,
            intra_op_threads=self.intra_op_threads,
            inter_op_threads=self.inter_op_threads,
            spinning=self.ort_spinning,
            tree_form=self.tree_form,
            max_model_bytes=self.max_model_bytes,
        )

    def _check_security(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            raise ValueError(f"{given} is set ({str(getattr(self, given))!r}) but {missing} is not: set both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError(f"tls_client_ca is set ({str(self.tls_client_ca)!r}) but TLS is not: set tls_cert and tls_key too")
        for name in ("tls_cert", "tls_key", "tls_client_ca"):
            path = getattr(self, name)
            if path is None:
                continue
            try:
                head = Path(path).read_bytes()
            except OSError as exc:
                raise ValueError(f"{name} {str(path)!r}: {exc.strerror or exc}") from None
            if b"-----BEGIN " not in head:
                raise ValueError(f"{name} {str(path)!r}: not a PEM file")
        if self.tokens_file is not None:
            load_tokens(self.tokens_file, "tokens_file")
        if not self.insecure and self.tls_cert is None and self.tokens_file is None and not is_loopback(self.host):
            raise ValueError(
                f"host {self.host!r} is not a loopback address and neither TLS (tls_cert, tls_key) nor tokens (tokens_file) are set: "
                "anyone who can reach the port could score and read models; set them, or --insecure (SCORECAST_INSECURE=1) to serve in the clear"
            )
        methods = pb.DESCRIPTOR.services_by_name["Scorecast"].methods_by_name
        unknown = [m for m in self.admin_methods if m not in methods]
        if unknown:
            raise ValueError(f"admin_methods: unknown method(s) {unknown}; scorecast.v1 has {sorted(methods)}")

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


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) only reaches this machine."""
    bare = host.strip().strip("[]")
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False  # another name, or "" (every address)


def _parse(name: str, raw: str, default: Any) -> Any:
    """Parse an environment value to the type of the field's default."""
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path) or name.endswith("_file") or name.startswith("tls_"):
            return Path(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {type(default).__name__}") from None
    return raw
