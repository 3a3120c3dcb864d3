"""Installing scorecast puts only `scorecast` (and its dist-info) into site-packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_has_only_the_scorecast_package(tmp_path: Path) -> None:
    """The wheel maps kernels/, server/, training/, proto/ under scorecast.*, nothing generic on top."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("scorecast-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"scorecast", next(t for t in tops if t.endswith(".dist-info"))}
    for module in ("kernels/rfm.py", "server/servicer.py", "training/simulate.py", "proto/scorecast_pb2.py", "proto/scorecast.proto", "cli.py", "training/datasets/CDNOW_sample.txt"):
        assert f"scorecast/{module}" in names
    assert not any("/tests/" in n or n.startswith("tests/") for n in names)
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "scorecast = scorecast.cli:main" in entry


def test_layers_import_only_what_they_may() -> None:
    """kernels/ imports nothing of ours; training/ and kernels/ never import server."""
    rules = {"kernels": ("scorecast", "from .."), "training": ("scorecast.server", "from ..server")}
    for folder, forbidden in rules.items():
        for path in (ROOT / folder).rglob("*.py"):
            for line in path.read_text().splitlines():
                stripped = line.strip()
                if stripped.startswith(("import ", "from ")):
                    assert not any(stripped.startswith(f"from {f}") or stripped.startswith(f"import {f}") for f in forbidden), f"{path}: {line}"
