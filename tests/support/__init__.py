"""Shared test support: real backing services (databases, an S3-compatible server)."""
