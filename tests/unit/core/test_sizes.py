"""Limits in messages read as an operator sets them."""

from __future__ import annotations

from conveyor.core.sizes import describe_size


def test_sizes_read_in_binary_units() -> None:
    assert describe_size(50 * 1024 * 1024) == "50 MiB"
    assert describe_size(1536 * 1024 * 1024) == "1.5 GiB"
    assert describe_size(10 * 1024 * 1024 + 1) == "10 MiB"
    assert describe_size(512 * 1024) == "512 KiB"
    assert describe_size(900) == "900 bytes"
