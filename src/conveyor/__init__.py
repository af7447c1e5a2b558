"""Conveyor: a self-hosted generation gateway."""

__version__ = "0.1.0"
