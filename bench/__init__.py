"""Conveyor's benchmarks (not tests): ``python -m bench`` or ``make bench``.

Modules: ``engine`` (queue and jobs engine against the provider simulator), ``engines``
(local engines), ``descriptions``. Results go to ``bench/RESULTS.md``.
"""
