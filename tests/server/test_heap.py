"""Measured memory (server/heap.py): the heap count follows allocations, and what the account
registry measures for its loads adds up to the resident memory they took."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scorecast.server.heap import heap_bytes, rss_bytes

from ..support.fakes import linear_model, wide_model, write_model


def test_heap_bytes_follows_an_allocation_and_its_release() -> None:
    """A 64 MB array moves the heap count by 64 MB (within 1%), and back when freed."""
    before = heap_bytes()
    block = np.ones(64 << 20, dtype=np.uint8)
    grown = heap_bytes() - before
    del block
    assert abs(grown - (64 << 20)) < (64 << 20) / 100
    assert abs(heap_bytes() - before) < (1 << 20)
    assert rss_bytes() > 0


_PROBE = """
import json, os, sys
from pathlib import Path
from scorecast.server.accounts import AccountRegistry
from scorecast.server.heap import rss_bytes
from scorecast.server.runtime import share_thread_pools

share_thread_pools(0, 0)
registry = AccountRegistry(Path(sys.argv[1]), budget=1 << 40)
names = registry.known()
with registry.hold(names[0], scan=False):  # the first load also maps ONNX Runtime's code: not a model's
    pass
first, rss0, threads0 = registry.held_bytes, rss_bytes(), len(os.listdir("/proc/self/task"))
for name in names[1:]:
    with registry.hold(name, scan=False):
        pass
print(json.dumps({"measured": registry.held_bytes - first, "rss": rss_bytes() - rss0,
                  "threads": [threads0, len(os.listdir("/proc/self/task"))], "loaded": len(registry.loaded())}))
"""


@pytest.mark.slow
def test_measured_account_bytes_add_up_to_the_rss_they_took(tmp_path: Path) -> None:
    """40 accounts of two models each, loaded one after another in a fresh serving process: the
    sum of their measured bytes is within 15% of the RSS growth (about 1.05 here; for trained
    models, benchmarks/accounts.py), and the process has as many
    threads after as after the first account (the shared ONNX Runtime pools)."""
    root = tmp_path / "models"
    for i in range(41):
        write_model(root / f"acct{i}", wide_model(width=131_072 + 64 * i))
        write_model(root / f"acct{i}", linear_model())
    out = subprocess.run([sys.executable, "-c", _PROBE, str(root)], capture_output=True, text=True, timeout=300, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["loaded"] == 41
    assert 0.85 < got["measured"] / got["rss"] < 1.15, got
    assert got["threads"][1] == got["threads"][0], got
