"""kernels/__init__: numba's OpenMP workers wait passively unless the environment says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = "import os, scorecast.kernels; print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_wait_policy_defaults_to_passive(given: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": given} if given else {})
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_serving_imports_leave_openmp_unloaded() -> None:
    """The policy is read when libgomp loads: nothing the server or rescore imports loads it first."""
    script = (
        "import scorecast.cli, scorecast.server.rescore, scorecast.server.servicer\n"
        "print(any('libgomp' in line for line in open('/proc/self/maps')))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
