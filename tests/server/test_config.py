"""Server settings: defaults, environment overrides, flags, and refused values."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorecast.server.config import ServerSettings
from scorecast.server.runtime import SessionOptions


def test_env_then_overrides() -> None:
    """SCORECAST_* variables override defaults; non-None overrides win over both."""
    env = {"SCORECAST_PORT": "6000", "SCORECAST_DEVICE": "cpu", "SCORECAST_MODELS": "/srv/models", "SCORECAST_GRACE_S": "2.5"}
    settings = ServerSettings.load(env=env, port=7000, host=None)
    assert settings.port == 7000 and settings.models == Path("/srv/models") and settings.grace_s == 2.5
    assert settings.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"SCORECAST_PORT": "abc"}, "SCORECAST_PORT='abc'"),
        ({"SCORECAST_DEVICE": "tpu"}, "device must be one of"),
        ({"SCORECAST_MAX_WORKERS": "0"}, "max_workers must be > 0"),
        ({"SCORECAST_TREE_FORM": "dense"}, "tree_form must be one of"),
        ({"SCORECAST_INTER_OP_THREADS": "-1"}, "inter_op_threads must be >= 0"),
    ],
    ids=["not-int", "device", "zero-workers", "tree-form", "negative-threads"],
)
def test_bad_values_are_refused(env: dict[str, str], match: str) -> None:
    """A bad setting fails at load with the variable or field named."""
    with pytest.raises(ValueError, match=match):
        ServerSettings.load(env=env)


def test_base_roots_from_env_and_refused_relative() -> None:
    """SCORECAST_BASE_ROOTS is a comma-separated list of absolute folders."""
    settings = ServerSettings.load(env={"SCORECAST_BASE_ROOTS": "/data/bases, /srv/b"})
    assert settings.base_roots == (Path("/data/bases"), Path("/srv/b"))
    assert ServerSettings.load(env={}).base_roots == ()
    with pytest.raises(ValueError, match="base_roots must be absolute"):
        ServerSettings.load(env={"SCORECAST_BASE_ROOTS": "bases"})


def test_onnx_runtime_thread_settings_reach_the_sessions(repo_dir: Path) -> None:
    """intra/inter-op threads and spinning go from SCORECAST_* variables to every session's options."""
    from scorecast.server.repository import ModelRepository

    env = {"SCORECAST_INTRA_OP_THREADS": "1", "SCORECAST_INTER_OP_THREADS": "1", "SCORECAST_ORT_SPINNING": "off"}
    settings = ServerSettings.load(env=env, models=repo_dir)
    assert (settings.intra_op_threads, settings.inter_op_threads, settings.ort_spinning) == (1, 1, False)
    repository = ModelRepository.load(settings.models, settings.session_options)
    for model in repository.defaults():
        options = model.session.get_session_options()
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_session_options_carry_every_onnx_setting() -> None:
    """ServerSettings builds one SessionOptions value holding all six session settings."""
    env = {"SCORECAST_INTRA_OP_THREADS": "3", "SCORECAST_INTER_OP_THREADS": "2", "SCORECAST_ORT_SPINNING": "on", "SCORECAST_TREE_FORM": "gemm"}
    options = ServerSettings.load(env=env, max_model_bytes=1234).session_options
    assert options == SessionOptions(
        device="cpu", intra_op_threads=3, inter_op_threads=2, spinning=True, tree_form="gemm", max_model_bytes=1234
    )
    assert "intra_op_threads=3" in repr(options) and "tree_form='gemm'" in repr(options)
