"""Compatibility APIs: each seed's HTTP contract served unchanged on top of the native engine.

One subpackage per seed system (``descriptions`` for seed 000, and so on). They translate
requests and answers; the work itself goes through the same jobs, recipes and providers as
the native ``/v1`` API.
"""
