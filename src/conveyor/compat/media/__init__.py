"""Seed 002: media (a picture and a pronunciation) for flashcard words, under ``/api/media``."""
