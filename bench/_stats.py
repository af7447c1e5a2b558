"""Small numeric and formatting helpers shared by the benchmark modules."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def seconds(value: float, digits: int = 2) -> str:
    return "—" if math.isnan(value) else f"{value:.{digits}f} s"


def mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def verdict(ok: bool | None) -> str:
    """PASS / MISS, or ``n/a`` where the run could not judge the target."""
    if ok is None:
        return "n/a"
    return "PASS" if ok else "**MISS**"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
