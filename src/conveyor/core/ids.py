"""Identifiers. Public ids are random UUIDs: a job id is also a read capability (seed 000)."""

from __future__ import annotations

import uuid


def new_id() -> str:
    return str(uuid.uuid4())
