"""TLS (with real certificates made by the openssl command line) and token authentication."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scorecast.client import ScorecastClient
from scorecast.proto import oip, oip_rpc
from scorecast.server.app import RunningServer, start_server
from scorecast.server.config import ServerSettings
from scorecast.server.repository import ModelRepository
from scorecast.server.security import hash_token

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line")

SCORER, ADMIN, INTRUDER = "scorer-secret-1", "admin-secret-2", "never-issued-3"


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def _leaf(folder: Path, name: str, usage: str, san: str | None = None) -> None:
    """A P-256 key and a certificate for it signed by ca.pem."""
    _openssl(folder, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
    ext = [f"extendedKeyUsage={usage}", "basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature"]
    (folder / f"{name}.ext").write_text("\n".join(ext + ([f"subjectAltName={san}"] if san else [])) + "\n")
    _openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem, server.pem/key (SAN 127.0.0.1, localhost) and client.pem/key, all signed by the CA."""
    folder = tmp_path_factory.mktemp("pki")
    _openssl(folder, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=scorecast test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _leaf(folder, "server", "serverAuth", "IP:127.0.0.1,DNS:localhost")
    _leaf(folder, "client", "clientAuth")
    return folder


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.json"
    entries = [
        {"token_sha256": hash_token(SCORER), "name": "batch", "roles": ["score"]},
        {"token_sha256": hash_token(ADMIN), "name": "ops", "roles": ["score", "admin"]},
    ]
    path.write_text(json.dumps({"tokens": entries}))
    return path


def _start(repository: ModelRepository, **settings: object) -> Iterator[RunningServer]:
    running = start_server(ServerSettings(port=0, **settings), repository)  # type: ignore[arg-type]
    yield running
    running.stop(0)


@pytest.fixture
def tls_server(repository: ModelRepository, pki: Path) -> Iterator[RunningServer]:
    yield from _start(repository, tls_cert=pki / "server.pem", tls_key=pki / "server.key")


@pytest.fixture
def mtls_server(repository: ModelRepository, pki: Path) -> Iterator[RunningServer]:
    yield from _start(repository, tls_cert=pki / "server.pem", tls_key=pki / "server.key", tls_client_ca=pki / "ca.pem")


@pytest.fixture
def token_server(repository: ModelRepository, tokens_file: Path) -> Iterator[RunningServer]:
    yield from _start(repository, tokens_file=tokens_file, admin_methods=("GetModel",))


def _status(call) -> tuple[grpc.StatusCode, str]:  # noqa: ANN001
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_tls_round_trip(tls_server: RunningServer, pki: Path) -> None:
    """A client trusting the CA talks to the TLS server, by IP and by host name."""
    for host in ("127.0.0.1", "localhost"):
        with ScorecastClient(f"{host}:{tls_server.port}", timeout=5, tls_ca=pki / "ca.pem") as client:
            assert sorted(m.score for m in client.list_models()) == ["affinity", "segments", "spend"]


def test_plaintext_client_against_tls_server_fails(tls_server: RunningServer, pki: Path) -> None:
    """A plaintext channel gets no answer from a TLS-only port."""
    with ScorecastClient(f"127.0.0.1:{tls_server.port}", timeout=5) as client:
        code, _ = _status(client.list_models)
    assert code == grpc.StatusCode.UNAVAILABLE


def test_client_certificate_required(mtls_server: RunningServer, pki: Path) -> None:
    """With tls_client_ca, a client without a certificate is refused; one with a CA-signed one works."""
    with ScorecastClient(f"127.0.0.1:{mtls_server.port}", timeout=5, tls_ca=pki / "ca.pem") as client:
        code, _ = _status(client.list_models)
    assert code == grpc.StatusCode.UNAVAILABLE
    with ScorecastClient(
        f"127.0.0.1:{mtls_server.port}", timeout=5, tls_ca=pki / "ca.pem", tls_cert=pki / "client.pem", tls_key=pki / "client.key"
    ) as client:
        assert client.get_model("spend").score == "spend"


@pytest.mark.parametrize(
    ("token", "code", "match"),
    [
        (None, grpc.StatusCode.UNAUTHENTICATED, "missing token"),
        (INTRUDER, grpc.StatusCode.UNAUTHENTICATED, "unknown token"),
        (SCORER, None, ""),
        (ADMIN, None, ""),
    ],
    ids=["none", "wrong", "scorer", "admin"],
)
def test_token_on_a_score_method(token_server: RunningServer, token: str | None, code: grpc.StatusCode | None, match: str) -> None:
    """ListModels needs a known token with the score role; the token never appears in an error."""
    with ScorecastClient(f"127.0.0.1:{token_server.port}", timeout=5, token=token) as client:
        if code is None:
            assert len(client.list_models()) == 3
            return
        got, details = _status(client.list_models)
    assert got == code and match in details and (token is None or token not in details)


def test_streaming_call_needs_a_token(token_server: RunningServer) -> None:
    """The check covers streaming methods too (Score is stream-stream)."""
    with ScorecastClient(f"127.0.0.1:{token_server.port}", timeout=5) as client:
        code, _ = _status(lambda: list(client.score([], ["spend"])))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_admin_method_needs_the_admin_role(token_server: RunningServer) -> None:
    """GetModel, marked admin here, is PERMISSION_DENIED for a score-only token and fine for an admin one."""
    with ScorecastClient(f"127.0.0.1:{token_server.port}", timeout=5, token=SCORER) as client:
        code, details = _status(lambda: client.get_model("spend"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "'admin' role" in details and "'batch'" in details and SCORER not in details
    with ScorecastClient(f"127.0.0.1:{token_server.port}", timeout=5, token=ADMIN) as client:
        assert client.get_model("spend").score == "spend"


def test_health_is_open_without_a_token(token_server: RunningServer) -> None:
    """Load balancers probe health without a token."""
    with grpc.insecure_channel(f"127.0.0.1:{token_server.port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_open_inference_protocol_probes_are_open_and_inference_needs_a_token(token_server: RunningServer) -> None:
    """KServe probes (ServerLive/Ready, ModelReady) need no token; ModelMetadata and ModelInfer need ``score``."""
    with grpc.insecure_channel(f"127.0.0.1:{token_server.port}") as channel:
        stub = oip_rpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(oip.ServerLiveRequest(), timeout=5).live
        assert stub.ModelReady(oip.ModelReadyRequest(name="spend"), timeout=5).ready
        code, _ = _status(lambda: stub.ModelInfer(oip.ModelInferRequest(model_name="spend"), timeout=5))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        meta = stub.ModelMetadata(oip.ModelMetadataRequest(name="spend"), timeout=5, metadata=(("authorization", f"Bearer {SCORER}"),))
        assert meta.name == "spend"


NODE_CLIENT = Path(__file__).resolve().parents[2] / "clients" / "node"


@pytest.mark.skipif(shutil.which("node") is None or not (NODE_CLIENT / "node_modules").is_dir(),
                    reason="node or clients/node/node_modules absent (`make test` runs `npm ci` when node is installed)")
def test_node_client_over_tls_with_a_token(repository: ModelRepository, pki: Path, tokens_file: Path) -> None:
    """clients/node's --tls-ca and --token options: scores with the right token, UNAUTHENTICATED with another."""
    for running in _start(repository, tls_cert=pki / "server.pem", tls_key=pki / "server.key", tokens_file=tokens_file):
        def example(token: str) -> subprocess.CompletedProcess[str]:
            argv = ["node", "example.js", "--target", f"localhost:{running.port}", "--tls-ca", str(pki / "ca.pem"), "--token", token,
                    "--scores", "spend", "--as-of", "2026-01-01T00:00:00Z"]
            return subprocess.run(argv, cwd=NODE_CLIENT, capture_output=True, text=True, timeout=60)

        good, bad = example(SCORER), example(INTRUDER)
        assert good.returncode == 0, good.stderr
        assert good.stdout.splitlines()[0] == "contact_id\tspend.value" and len(good.stdout.splitlines()) == 4
        assert bad.returncode == 1 and "unknown token" in bad.stderr


def test_tls_and_tokens_together(repository: ModelRepository, pki: Path, tokens_file: Path) -> None:
    """Token over TLS, from the client's per-call metadata."""
    for running in _start(repository, tls_cert=pki / "server.pem", tls_key=pki / "server.key", tokens_file=tokens_file):
        with ScorecastClient(f"localhost:{running.port}", timeout=5, tls_ca=pki / "ca.pem", token=SCORER) as client:
            assert len(client.list_models()) == 3


def _bad_tokens(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


GOOD = {"token_sha256": "a" * 64, "name": "x", "roles": ["score"]}


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (lambda t, p: {"tls_cert": p / "server.pem"}, r"tls_cert is set .* but tls_key is not"),
        (lambda t, p: {"tls_key": p / "server.key"}, r"tls_key is set .* but tls_cert is not"),
        (lambda t, p: {"tls_cert": t / "none.pem", "tls_key": p / "server.key"}, r"tls_cert '.*none\.pem'"),
        (lambda t, p: {"tls_cert": p / "server.pem", "tls_key": p / "server.csr.x"}, r"tls_key '.*server\.csr\.x'"),
        (lambda t, p: {"tls_cert": p / "server.pem", "tls_key": p / "server.ext"}, r"tls_key '.*server\.ext': not a PEM"),
        (lambda t, p: {"tls_client_ca": p / "ca.pem"}, r"tls_client_ca is set .* but TLS is not"),
        (lambda t, p: {"tokens_file": t / "none.json"}, r"tokens_file '.*none\.json': no such file"),
        (lambda t, p: {"tokens_file": _bad_tokens(t, "{not json")}, r"tokens_file '.*bad\.json': not readable JSON"),
        (lambda t, p: {"tokens_file": _bad_tokens(t, {"tokens": []})}, r"tokens_file '.*bad\.json': expected"),
        (lambda t, p: {"tokens_file": _bad_tokens(t, {"tokens": [{**GOOD, "token_sha256": "plaintext"}]})}, r"tokens\[0\]: token_sha256 must be"),
        (lambda t, p: {"tokens_file": _bad_tokens(t, {"tokens": [GOOD, {**GOOD, "roles": ["root"]}]})}, r"tokens\[1\] \('x'\): roles must be"),
        (lambda t, p: {"tokens_file": _bad_tokens(t, {"tokens": [GOOD, GOOD]})}, r"tokens\[1\] \('x'\): the same token_sha256"),
        (lambda t, p: {"tokens_file": _bad_tokens(t, {"tokens": [{**GOOD, "token": "s3cret"}]})}, r"tokens\[0\]: expected an object"),
        (lambda t, p: {"admin_methods": ("Relaod",)}, r"admin_methods: unknown method\(s\) \['Relaod'\]"),
    ],
    ids=["cert-only", "key-only", "missing-cert", "missing-key", "key-not-pem", "ca-without-tls", "no-tokens-file",
         "not-json", "no-tokens", "plaintext-hash", "bad-role", "duplicate", "extra-field", "unknown-method"],
)
def test_bad_security_settings_are_refused(settings, match: str, tmp_path: Path, pki: Path) -> None:  # noqa: ANN001
    """Each bad security setting fails at load, naming the setting and the file or entry."""
    with pytest.raises(ValueError, match=match):
        ServerSettings.load(env={}, **settings(tmp_path, pki))


def test_security_settings_from_the_environment(pki: Path, tokens_file: Path) -> None:
    """SCORECAST_TLS_* and SCORECAST_TOKENS_FILE are paths; SCORECAST_ADMIN_METHODS is comma-separated."""
    env = {
        "SCORECAST_TLS_CERT": str(pki / "server.pem"),
        "SCORECAST_TLS_KEY": str(pki / "server.key"),
        "SCORECAST_TLS_CLIENT_CA": str(pki / "ca.pem"),
        "SCORECAST_TOKENS_FILE": str(tokens_file),
        "SCORECAST_ADMIN_METHODS": "GetModel, ListModels",
    }
    settings = ServerSettings.load(env=env)
    assert settings.tls_client_ca == pki / "ca.pem" and settings.tokens_file == tokens_file
    assert settings.admin_methods == ("GetModel", "ListModels")


def test_cli_flags_reach_the_settings(pki: Path, tokens_file: Path) -> None:
    """`serve` TLS and token flags land in ServerSettings."""
    from scorecast.cli.commands import _settings, build_parser

    args = build_parser().parse_args(
        ["serve", "--models", "m", "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
         "--tls-client-ca", str(pki / "ca.pem"), "--tokens-file", str(tokens_file), "--admin-methods", "GetModel"]
    )
    settings = _settings(args)
    assert settings.tls_cert == pki / "server.pem" and settings.tls_client_ca == pki / "ca.pem"
    assert settings.tokens_file == tokens_file and settings.admin_methods == ("GetModel",)


def test_cli_score_sends_the_token(
    token_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`score` takes SCORECAST_TOKEN (or --token); refusals are one line naming the status, never the token."""
    from scorecast.cli import main

    argv = ["score", "--server", f"127.0.0.1:{token_server.port}", "--data", str(tmp_path), "--scores", "spend", "--out", str(tmp_path / "o.parquet")]
    monkeypatch.delenv("SCORECAST_TOKEN", raising=False)
    assert main(argv) == 2
    assert "UNAUTHENTICATED: missing token" in capsys.readouterr().err
    monkeypatch.setenv("SCORECAST_TOKEN", SCORER)
    assert main(argv) == 2  # GetModel is admin-only on this server
    err = capsys.readouterr().err
    assert "PERMISSION_DENIED" in err and SCORER not in err
    assert main([*argv, "--token", INTRUDER]) == 2
    assert "UNAUTHENTICATED: unknown token" in capsys.readouterr().err
