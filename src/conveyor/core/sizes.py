"""Byte counts as people read them in messages (``50 MiB``), so a limit reads as it is set."""

from __future__ import annotations

__all__ = ["describe_size"]


def describe_size(size: int) -> str:
    """A byte count as people read it: ``50 MiB``, ``1.5 GiB``, ``512 KiB``, ``900 bytes``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"
