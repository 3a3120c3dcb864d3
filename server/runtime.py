"""One served model: an ONNX Runtime session on the CPU or CUDA provider, and its metadata.

``OnnxModel.load`` checks the file (size, operator sets, inputs and outputs against its own
metadata: the ONNX file is all the server needs), builds the session, replays the model's
parity probe when it has one (``params.probe``: feature rows and the outputs training got
for them) and warms it up. ``run`` takes the float32 feature matrix and returns the named
outputs as NumPy arrays. A graph training already optimized (``OPTIMIZED_KEY`` in its
``metadata_props``) gets a CPU session built without ONNX Runtime's optimizer.

Tree ensembles (ai.onnx.ml TreeEnsemble*, no CUDA kernel) are served in GEMM form
(:mod:`scorecast.server.tree_gemm`) when ``tree_form`` says so (``auto``: on CUDA only),
after a parity check on the CPU against the native form; a failed check keeps the native
form and logs why.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from scorecast.metadata import INPUT_NAME, METADATA_KEY, OPTIMIZED_KEY, ModelMetadata

from .errors import ModelLoadError
from .tree_gemm import TREE_FORMS, UnsupportedTree, probe_rows, to_gemm, tree_nodes

__all__ = ["TREE_FORMS", "OnnxModel", "SessionOptions", "providers_for", "share_thread_pools", "warm_runtime"]

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# Below this many rows, binding buffers costs more than the copies it saves.
IO_BINDING_MIN_ROWS = 10_000
DEFAULT_MAX_MODEL_BYTES = 1 << 30
"""Largest model file the server loads (a 50k-SKU recommender with 64 factors is ~13 MB)."""
# Operator sets a served graph may import: the standard ones, up to what this onnx knows.
# Anything else (custom ops, contrib domains) could need code we never load.
OPSET_LIMITS = {"": onnx.defs.onnx_opset_version(), "ai.onnx.ml": onnx.helper.VERSION_TABLE[-1][3]}
MIN_OPSET = 9
# Probe parity: outputs may differ from training's by this much (CUDA kernels reorder sums).
PROBE_RTOL, PROBE_ATOL = 1e-3, 1e-4
# Load-time parity of the GEMM form vs native: |gemm - native| <= atol + rtol * |native| on the
# probe batch. Routing is exact; float32 sums over trees in another order stay far below.
GEMM_PARITY_ATOL = 1e-5
GEMM_PARITY_RTOL = 1e-5
GEMM_PROBE_ROWS = 4096
# The GEMM form's working memory grows with rows x trees x leaves: batches are scored in
# slices of at most this many bytes of it (the rows per slice are logged at load).
GEMM_SLICE_BYTES = 1 << 30


def providers_for(device: str) -> list[str]:
    """Execution providers for a device; raises RuntimeError if CUDA is asked for and absent."""
    if device == "cpu":
        return [CPU]
    available = ort.get_available_providers()
    if CUDA not in available:
        raise RuntimeError(
            f"device 'cuda' needs ONNX Runtime's {CUDA}, but this onnxruntime build offers only "
            f"{available}: install onnxruntime-gpu (pip install 'scorecast[cuda]') in place of onnxruntime"
        )
    # CPU stays listed so operators without a CUDA kernel (TreeEnsemble) still run.
    return [CUDA, CPU]



@dataclass(frozen=True)
class SessionOptions:
    """How every model's ONNX Runtime session is built (from ``ServerSettings.session_options``).

    ``intra_op_threads``/``inter_op_threads``: ONNX Runtime's pools (0: its default);
    ``spinning``: whether its intra-op threads spin between runs instead of sleeping (see
    ``ServerSettings.ort_spinning``); ``max_model_bytes``: the largest file accepted;
    ``tree_form``: see ``ServerSettings.tree_form``.
    """

    device: str = "cpu"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    spinning: bool = False
    tree_form: str = "auto"
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES

    def __post_init__(self) -> None:
        if self.tree_form not in TREE_FORMS:
            raise ValueError(f"tree_form must be one of {TREE_FORMS}, got {self.tree_form!r}")

    def ort(self) -> ort.SessionOptions:
        """ONNX Runtime's own options object for one session: on the process's shared CPU arena,
        and on its shared thread pools once ``share_thread_pools`` made them (else its own)."""
        _shared_arena()
        options = ort.SessionOptions()
        options.add_session_config_entry("session.use_env_allocators", "1")
        # weights outside the arena: the arena never gives memory back, so an evicted account's
        # weights would stay resident (its blocks reused, the RSS not lowered); allocated plainly
        # they are freed with the session, and the arena holds only what runs use (request memory)
        options.add_session_config_entry("session.use_device_allocator_for_initializers", "1")
        if _pool_sizes is not None:
            options.use_per_session_threads = False
            # The shared pools' threads spin after work (the Python API sets only their sizes):
            # stopping them when each run ends is what "no spinning" means there.
            options.add_session_config_entry("session.force_spinning_stop", "0" if self.spinning else "1")
        else:
            options.intra_op_num_threads = self.intra_op_threads
            options.inter_op_num_threads = self.inter_op_threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        options.log_severity_level = 3  # CUDA fallback notices for tree operators are expected
        return options


DEFAULT_SESSION_OPTIONS = SessionOptions()
"""CPU, ONNX Runtime's own thread counts, no spinning, ``tree_form`` auto."""

_environment_lock = threading.Lock()
_pool_sizes: tuple[int, int] | None = None
_arena = False


def share_thread_pools(intra_op_threads: int, inter_op_threads: int) -> tuple[int, int]:
    """Create ONNX Runtime's process-wide thread pools (0: its default size), once; every session
    built after runs on them instead of pools of its own. Returns the sizes in force.

    A session with pools of its own adds a thread per core for every model loaded (20 sessions:
    20 more threads on 2 cores); on the shared pools the count stays flat however many accounts
    load. ONNX Runtime creates them once per process (the first sizes asked for stay; a later,
    different request is logged) and from then on refuses any session that asks for its own
    pools, whoever builds it: only a process that does nothing but serve calls this
    (``processes.serve``), while a process that also trains (tests, the demo, benchmarks) keeps
    per-session pools."""
    global _pool_sizes
    with _environment_lock:
        if _pool_sizes is None:
            ort.capi._pybind_state.set_global_thread_pool_sizes(intra_op_threads, inter_op_threads)
            _pool_sizes = (intra_op_threads, inter_op_threads)
        elif _pool_sizes != (intra_op_threads, inter_op_threads):
            log.warning(
                "ONNX Runtime's shared thread pools were created with sizes %s (intra, inter); %s asked for now stays unused",
                _pool_sizes, (intra_op_threads, inter_op_threads),
            )  # fmt: skip
        return _pool_sizes


def warm_runtime(options: SessionOptions) -> None:
    """Build and run one tiny session: ONNX Runtime's one-time set-up (its environment, the shared
    arena's first block, kernel registries: ~7 MB) then belongs to the server's start, not to the
    first account loaded, whose measured size it would otherwise swell."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "warm", [x], [y])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), options.ort(), providers=providers_for(options.device))
    session.run(None, {"x": np.zeros((1, 1), np.float32)})


def _shared_arena() -> None:
    """Register one CPU arena every session allocates from (once per process). Per session, an
    arena reserves ~1 MB and grows to the largest batch that session ever ran: at thousands of
    accounts, more than the models themselves; and an account's measured bytes (``heap.py``) would
    count reserved, untouched pages (1.1 MB of heap per tiny session for 0.1 MB resident; on the
    shared arena, 81 KB of heap for 100 KB resident)."""
    global _arena
    with _environment_lock:
        if not _arena:
            memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, -1, -1, -1))  # ONNX Runtime's arena defaults
            _arena = True


@dataclass
class OnnxModel:
    """A loaded model version: session, metadata and where it came from."""

    path: Path
    meta: ModelMetadata
    session: ort.InferenceSession
    load_seconds: float
    tree_form: str = "native"
    """``gemm`` when the tree ensembles were rewritten, else ``native`` (also: no trees)."""
    rows_per_run: int | None = None
    """Batches above this many rows run in slices (GEMM form's working memory)."""

    @classmethod
    def load(cls, path: Path, options: SessionOptions = DEFAULT_SESSION_OPTIONS) -> OnnxModel:
        """Check the file, build the session, check the graph and the probe; ModelLoadError if unservable."""
        start = time.perf_counter()
        proto, data = _check_file(path, options.max_model_bytes)
        session_options = options.ort()
        providers = providers_for(options.device)
        source: str | bytes = data  # the bytes that were checked: a file swapped since cannot skip the checks
        rows_per_run = None
        if options.tree_form == "gemm" or (options.tree_form == "auto" and options.device == "cuda"):
            gemm = _gemm_form(path, proto, session_options)
            if gemm is not None:
                source, rows_per_run = gemm
        if rows_per_run is None and options.device == "cpu" and any(p.key == OPTIMIZED_KEY for p in proto.metadata_props):
            # training ran the device-independent optimizer (onnx_export.optimize_graph): running it
            # again was half of the session's build, which an account's first call waits for
            session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            session = ort.InferenceSession(source, sess_options=session_options, providers=providers)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelLoadError(path, f"ONNX Runtime refused it: {exc}") from None
        raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise ModelLoadError(path, f"no '{METADATA_KEY}' entry in its metadata_props")
        try:
            meta = ModelMetadata.from_json(raw)
        except ValueError as exc:
            raise ModelLoadError(path, str(exc)) from None
        _check_graph(path, session, meta)
        form = "native" if rows_per_run is None else "gemm"
        model = cls(path=path, meta=meta, session=session, load_seconds=0.0, tree_form=form, rows_per_run=rows_per_run)
        model.run(np.zeros((1, len(meta.features)), dtype=np.float32))  # warm-up: allocations, kernels
        _check_probe(model)
        model.load_seconds = time.perf_counter() - start
        return model

    @property
    def providers(self) -> list[str]:
        """Execution providers of the session, in priority order."""
        return list(self.session.get_providers())

    def run(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Score a float32 C-contiguous ``[n, len(features)]`` matrix; outputs by name.

        Large batches run in slices, so memory stays bounded per chunk: of the GEMM tree form's
        working memory (``rows_per_run``), or of a model whose ``params.max_batch_rows`` is
        set (recommendations: rows x catalogue scores).
        """
        limits = [r for r in (self.rows_per_run, self.meta.params.max_batch_rows) if r]
        step = min(limits) if limits else None
        if step is not None and features.shape[0] > step:
            parts = [self._run(features[lo : lo + step]) for lo in range(0, features.shape[0], step)]
            return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        return self._run(features)

    def _run(self, features: np.ndarray) -> dict[str, np.ndarray]:
        names = self._output_names
        if features.shape[0] >= IO_BINDING_MIN_ROWS and self._on_cuda:
            # One host-to-device copy of the input, outputs gathered on the host at the end:
            # without binding, ONNX Runtime copies per run and allocates outputs each time.
            binding = self.session.io_binding()
            binding.bind_cpu_input(INPUT_NAME, np.ascontiguousarray(features))
            for name in names:
                binding.bind_output(name, "cpu")
            self.session.run_with_iobinding(binding)
            # copy_outputs_to_cpu returns the outputs in binding order, i.e. `names`
            return dict(zip(names, binding.copy_outputs_to_cpu(), strict=True))
        return dict(zip(names, self.session.run(names, {INPUT_NAME: features}), strict=True))

    @functools.cached_property
    def _output_names(self) -> list[str]:
        return sorted({o.onnx_output for o in self.meta.outputs})

    @functools.cached_property
    def _on_cuda(self) -> bool:
        return CUDA in self.session.get_providers()


def _check_file(path: Path, max_bytes: int) -> tuple[onnx.ModelProto, bytes]:
    """Size and operator sets, before ONNX Runtime parses anything else of the file; returns
    the parsed model (the GEMM rewrite reads it too) and the bytes it was parsed from (the
    session is built from them, not from the path again)."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)  # never more than the limit, whatever stat said
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ModelLoadError(path, f"more than {max_bytes} bytes is over the limit of {max_bytes} (setting max_model_bytes)")
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # DecodeError and friends: a truncated or foreign file
        raise ModelLoadError(path, f"not an ONNX model: {type(exc).__name__}: {exc}") from None
    for opset in proto.opset_import:
        domain = opset.domain or ""
        if domain not in OPSET_LIMITS:
            raise ModelLoadError(path, f"imports operator set {domain!r}; only {sorted(OPSET_LIMITS)} are served")
        low = MIN_OPSET if domain == "" else 1
        if not low <= opset.version <= OPSET_LIMITS[domain]:
            raise ModelLoadError(path, f"operator set {domain or 'ai.onnx'} version {opset.version} is outside {low}..{OPSET_LIMITS[domain]}")
    external = _external_tensors(proto.graph)
    if external:
        raise ModelLoadError(path, f"tensors {external[:3]} live in external files; a model must be one file")
    return proto, data


def _external_tensors(graph: onnx.GraphProto) -> list[str]:
    """Names of the tensors of ``graph`` stored in external files: initializers, sparse
    initializers, tensor attributes (Constant nodes and others), and the same in every subgraph."""
    tensors = [*graph.initializer, *(s.values for s in graph.sparse_initializer), *(s.indices for s in graph.sparse_initializer)]
    subgraphs = []
    for node in graph.node:
        for attribute in node.attribute:
            tensors += [attribute.t, *attribute.tensors, attribute.sparse_tensor.values, attribute.sparse_tensor.indices]
            tensors += [t for s in attribute.sparse_tensors for t in (s.values, s.indices)]
            subgraphs += [attribute.g, *attribute.graphs]
    names = [t.name or "(unnamed)" for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL]
    for sub in subgraphs:
        names += _external_tensors(sub)
    return names


def _check_probe(model: OnnxModel) -> None:
    """Replay the rows training recorded; outputs beyond tolerance mean this runtime (or this
    file) does not compute what was validated."""
    probe = model.meta.params.probe
    if probe is None:
        return
    try:
        x = _floats(probe["features"]).astype(np.float32)
        expected = {name: _floats(v) for name, v in probe["outputs"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(model.path, f"params.probe is malformed: {exc}") from None
    if x.ndim != 2 or x.shape[1] != len(model.meta.features):
        raise ModelLoadError(model.path, f"params.probe.features has shape {x.shape}, expected (n, {len(model.meta.features)})")
    got = model.run(np.ascontiguousarray(x))
    for name, want in expected.items():
        if name not in got:
            raise ModelLoadError(model.path, f"params.probe names output {name!r} the graph does not have")
        have = got[name].astype(np.float64).reshape(want.shape)
        both_nan = np.isnan(have) & np.isnan(want)
        close = np.isclose(have, want, rtol=PROBE_RTOL, atol=PROBE_ATOL) | both_nan
        if not close.all():
            i = np.argwhere(~close)[0]
            raise ModelLoadError(
                model.path,
                f"parity probe failed on output {name!r} at {tuple(int(k) for k in i)}: got {have[tuple(i)]!r}, "
                f"training recorded {want[tuple(i)]!r} (rtol {PROBE_RTOL}, atol {PROBE_ATOL}) on {model.providers[0]}",
            )


def _floats(values: object) -> np.ndarray:
    """Nested JSON lists to float64, null as NaN (how training stores NaN)."""
    return np.array(values, dtype=object).astype(np.float64)  # None -> nan


def _gemm_form(path: Path, proto: onnx.ModelProto, options: ort.SessionOptions) -> tuple[bytes, int] | None:
    """The model (``proto``, read from ``path``) with its trees in GEMM form, and rows per run;
    None keeps it native.

    None (logged) when the model has no tree node, the rewrite refuses it, or the two forms
    differ on the probe batch by more than the parity tolerance on the CPU provider.
    """
    if not tree_nodes(proto):
        return None
    try:
        rewrite = to_gemm(proto)
    except (UnsupportedTree, ValueError) as exc:
        log.warning("%s: keeping the native tree form: %s", path, exc)
        return None
    gemm = rewrite.model.SerializeToString()
    try:
        features = next(i for i in proto.graph.input if i.name == INPUT_NAME)
        width = features.type.tensor_type.shape.dim[-1].dim_value
        probe = probe_rows(proto, width, GEMM_PROBE_ROWS)
        cpu = [CPU]
        native = ort.InferenceSession(proto.SerializeToString(), sess_options=options, providers=cpu)
        rewritten = ort.InferenceSession(gemm, sess_options=options, providers=cpu)
        names = [o.name for o in native.get_outputs()]
        expected = native.run(names, {INPUT_NAME: probe})
        got = rewritten.run(names, {INPUT_NAME: probe})
    except Exception as exc:  # noqa: BLE001 (any failure of the check keeps the tested native form)
        log.warning("%s: keeping the native tree form: the parity check failed to run: %s", path, exc)
        return None
    for name, e, g in zip(names, expected, got, strict=True):
        excess = np.abs(g.astype(np.float64) - e) - (GEMM_PARITY_ATOL + GEMM_PARITY_RTOL * np.abs(e))
        if g.shape != e.shape or not (excess <= 0).all():  # NaN in either side fails too
            worst = float(np.nanmax(np.abs(g.astype(np.float64) - e))) if g.shape == e.shape else float("nan")
            log.warning(
                "%s: keeping the native tree form: output %r of the GEMM form differs by up to %.3g "
                "(tolerance %g + %g x |value|) on %d probe rows",
                path, name, worst, GEMM_PARITY_ATOL, GEMM_PARITY_RTOL, len(probe),
            )  # fmt: skip
            return None
    rows = max(1024, GEMM_SLICE_BYTES // max(rewrite.bytes_per_row, 1))
    log.info(
        "%s: trees %s in GEMM form (%d bytes of matrices, ~%d bytes per row, slices of %d rows)",
        path, list(rewrite.nodes), rewrite.parameter_bytes, rewrite.bytes_per_row, rows,
    )  # fmt: skip
    return gemm, rows


def _check_graph(path: Path, session: ort.InferenceSession, meta: ModelMetadata) -> None:
    """The graph must take float32 ``features`` [n, len(meta.features)] and emit every output named."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise ModelLoadError(path, f"expected one input named {INPUT_NAME!r}, got {[i.name for i in inputs]}")
    if inputs[0].type != "tensor(float)":
        raise ModelLoadError(path, f"input {INPUT_NAME!r} has type {inputs[0].type}, expected tensor(float)")
    width = inputs[0].shape[-1]
    if isinstance(width, int) and width != len(meta.features):
        raise ModelLoadError(path, f"input width {width} != {len(meta.features)} features in its metadata")
    graph_outputs = {o.name for o in session.get_outputs()}
    missing = sorted({o.onnx_output for o in meta.outputs} - graph_outputs)
    if missing:
        raise ModelLoadError(path, f"metadata names outputs {missing} the graph does not have ({sorted(graph_outputs)})")
