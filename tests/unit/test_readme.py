"""The README's configuration table names every setting there is."""

from __future__ import annotations

from pathlib import Path

from conveyor.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    missing = [
        f"CONVEYOR_{n.upper()}"
        for n in Settings.model_fields
        if f"CONVEYOR_{n.upper()}" not in text
    ]
    assert missing == []


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make serve" in text
    assert "make test" in text
