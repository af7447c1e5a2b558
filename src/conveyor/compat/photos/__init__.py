"""Seed 004: the product-photo API (``/process_single``, ``/single_progress``, ``/models``...).

The work itself is the ``product-photo`` recipe; this package holds what the seed's API adds
around it, each piece a pure building block its endpoints wire together:

* ``errors`` — the seed's error body ``{"error", "message", "code": 4001}`` and its numbers;
* ``uploads`` — PNG/JPEG/WEBP by content, 10 MB, corrupt files and decompression bombs;
* ``limits`` — 10 requests at once per client address, ``X-Forwarded-For`` from trusted
  proxies only;
* ``catalogue`` — ``/models`` cards for every background model, local ones included;
* ``progress`` — ``/single_progress``, ``/batch_progress`` and ``/history`` answers from a
  job and its items;
* ``schemas`` — the answers' shapes, field for field as the seed documents them.
"""
