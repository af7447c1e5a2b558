"""Seed 003: boxes of media and their assets (``/api/boxes/``, ``/api/assets/``).

An asset is an upload or a generation; a generation is a durable job of recipe ``model``
underneath (``service``), checked before any provider call (``generation``); its file is
linked for download without a key (``links``); ``settling`` keeps finished results beyond
job retention. Decisions: docs/compat-boxes.md.
"""
