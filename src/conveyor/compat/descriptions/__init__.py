"""Seed 000: the vehicle-damage descriptions API (``/api/v1/generate-descriptions`` and friends).

``signing`` holds the seed's HMAC over ``lots`` and the signature this service adds for the
management endpoints the seed left unauthenticated.
"""
