"""kernels.passive_openmp: numba's OpenMP workers wait passively when serving or rescoring,
unless the environment says otherwise; importing the kernels (training) leaves it alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = "import os, scorecast.kernels as k; {call}print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize(
    ("given", "call", "expected"),
    [(None, "k.passive_openmp(); ", "PASSIVE"), ("ACTIVE", "k.passive_openmp(); ", "ACTIVE"), (None, "", "None")],
    ids=["default", "explicit-wins", "import-alone"],
)
def test_wait_policy(given: str | None, call: str, expected: str) -> None:
    """Passive when asked, an explicit setting kept; a plain import (training: scikit-learn's
    gradient boosting shares libgomp and is 6-8x slower waiting passively) sets nothing."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": given} if given else {})
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(call=call)], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_serving_imports_leave_openmp_unloaded() -> None:
    """The policy is read when libgomp loads: nothing the server or rescore imports loads it
    before start_server or rescore set it."""
    script = (
        "import scorecast.cli, scorecast.server.rescore, scorecast.server.servicer\n"
        "print(any('libgomp' in line for line in open('/proc/self/maps')))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
