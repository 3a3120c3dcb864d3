"""kernels/__init__.py: the public surface is exactly what __all__ lists."""

from __future__ import annotations

import types

import scorecast.kernels as kernels


def test_all_lists_every_public_name_sorted() -> None:
    """__all__ is sorted and names every public, non-module attribute of the package."""
    public = {
        name
        for name, value in vars(kernels).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert kernels.__all__ == sorted(kernels.__all__)
    assert set(kernels.__all__) == public
