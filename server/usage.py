"""The usage file: what each account's calls did, for a platform to bill from.

Per-account figures stay out of the Prometheus metrics (10,000 accounts would be 10,000 series
per metric). Every ``usage_interval_s``, and when the server stops, the file is replaced whole
(``scorecast.atomic``: a reader sees the previous version or this one, never a partial one) by
one JSON object per line, one line per account that had a call since the server started::

    {"account": "acme", "calls": 1200, "contacts": 5300000, "errors": 3, "loads": 2,
     "since": "2026-03-01T02:00:00Z", "at": "2026-03-01T03:00:00Z", "server": "<host>:<pid>"}

Counts are totals since ``since`` (the server's start): a biller takes the difference between
two files of the same ``server``, and a new ``since`` means the counts started again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

from scorecast.atomic import write_text

from .accounts import AccountRegistry

__all__ = ["UsageWriter"]

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class UsageWriter:
    """Writes the registry's usage to ``path`` every ``interval_s`` on a daemon thread."""

    def __init__(self, registry: AccountRegistry, path: Path, interval_s: float) -> None:
        self.registry, self.path, self.interval_s = registry, Path(path), interval_s
        self.since = _now()
        self.server = f"{socket.gethostname()}:{os.getpid()}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scorecast-usage", daemon=True)

    def start(self) -> UsageWriter:
        """Start writing; returns itself."""
        self._thread.start()
        return self

    def write(self) -> None:
        """Write the file now."""
        at = _now()
        lines = [
            json.dumps({"account": name, **vars(usage), "since": self.since, "at": at, "server": self.server})
            for name, usage in sorted(self.registry.usage().items())
        ]
        write_text(self.path, "".join(line + "\n" for line in lines))

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            try:
                self.write()
            except OSError as exc:  # a full or unwritable disk must not stop the server; next time may work
                log.error("could not write the usage file %s: %s", self.path, exc)

    def stop(self) -> None:
        """Stop the thread and write the final counts."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            self.write()
        except OSError as exc:
            log.error("could not write the usage file %s: %s", self.path, exc)
