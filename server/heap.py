"""How many bytes the process holds: the C heap in use (what a model load adds) and its RSS.

A model's memory is measured, not guessed from its file: the registry loads one account at a
time and takes the difference of ``heap_bytes`` around the load (and of ``rss_bytes``, keeping
the larger; ``peak_rss_bytes`` gives the load's peak, which the next load of it reserves). ONNX Runtime's sessions, its
CPU arena, the initializers it copies and optimises, and NumPy arrays all come from glibc's
malloc, so glibc's own count of the bytes in use (``mallinfo2``: ``uordblks``, the arena bytes
in use, plus ``hblkhd``, the bytes of blocks it mmapped) moves by exactly what a load keeps.
Unlike RSS it does not count pages freed but not yet returned to the system, nor the first
touch of shared-library pages, so it neither drifts upward with fragmentation nor jumps on the
first load. What it misses: Python's small-object arenas (mmapped directly; a model's metadata
is a few KB of them) and Arrow's buffers (its own allocator; a request's, never a model's).
Where glibc is absent (musl, macOS) the RSS difference stands in.

A load's transients (the file's bytes, the parsed graph, ONNX Runtime's optimisation copies)
are freed, but glibc keeps their pages resident as holes between the blocks that stay: RSS
then grows by a third more than the models hold (measured: 121 MB of RSS for 91 MB in use over
40 accounts). ``release_free_memory`` (``malloc_trim``) hands those pages back after each load
(0.4 ms), and RSS growth meets the measured bytes again (89 MB for 93 MB).
``tests/server/test_heap.py`` holds the sum of measured account loads against the RSS they added.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import cache

__all__ = ["heap_bytes", "peak_rss_bytes", "release_free_memory", "reset_peak_rss", "rss_bytes"]


class _MallInfo2(ctypes.Structure):
    # glibc >= 2.33: every field a size_t (mallinfo's ints wrap past 2 GiB)
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
    ]


@cache
def _libc_function(name: str) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        return getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):  # not glibc, or glibc before 2.33 (mallinfo2)
        return None


@cache
def _mallinfo2() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    function = _libc_function("mallinfo2")
    if function is not None:
        function.restype = _MallInfo2
        function.argtypes = []
    return function


def heap_bytes() -> int:
    """Bytes of the C heap in use (glibc: arena bytes in use + mmapped blocks); RSS without glibc."""
    function = _mallinfo2()
    if function is None:
        return rss_bytes()
    info = function()
    return int(info.uordblks + info.hblkhd)


@cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    function = _libc_function("malloc_trim")
    if function is not None:
        function.argtypes = [ctypes.c_size_t]
    return function


def release_free_memory() -> None:
    """Return the C heap's free pages to the system (glibc ``malloc_trim``; nothing elsewhere)."""
    function = _malloc_trim()
    if function is not None:
        function(0)


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process, in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def reset_peak_rss() -> bool:
    """Start ``peak_rss_bytes`` again from the RSS now (Linux ``/proc/self/clear_refs``: 5 resets
    only the peak); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    """The largest RSS of this process since it started or since ``reset_peak_rss`` (VmHWM)."""
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024
    return rss_bytes()
