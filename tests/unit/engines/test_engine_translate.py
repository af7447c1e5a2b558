"""Translation with apertium: eng↔spa, HTML kept, any other pair unavailable with the way out."""

from __future__ import annotations

import pytest

from conveyor.providers.local import EngineInputError, EngineOptions, EngineUnavailable
from conveyor.providers.local.apertium import translate
from tests.support.programs import requires_program

pytestmark = requires_program("apertium")


def test_english_to_spanish() -> None:
    assert "roja" in translate("The red cup is on the table.", "en", "es").lower()


def test_spanish_to_english() -> None:
    assert "red" in translate("La taza roja está en la mesa.", "es", "en-US").lower()


def test_html_markup_is_kept() -> None:
    out = translate('<p class="x">Hello <b>world</b></p>', "en", "es", text_format="html")
    assert out.startswith('<p class="x">')
    assert "<b>" in out
    assert "</b>" in out
    assert out.endswith("</p>")
    assert "Hola" in out


def test_unknown_words_are_not_starred_unless_asked() -> None:
    assert "*" not in translate("The zorblax is red.", "en", "es")
    assert "*" in translate("The zorblax is red.", "en", "es", mark_unknown=True)


@pytest.mark.parametrize(("source", "target"), [("en", "ru"), ("de", "en"), ("en", "zh")])
def test_other_pairs_are_unavailable_and_name_the_setting(source: str, target: str) -> None:
    with pytest.raises(EngineUnavailable) as caught:
        translate("Hello", source, target)
    assert "CONVEYOR_TRANSLATE_MODEL" in (caught.value.enable_with or "")
    assert "eng→spa" in caught.value.message


def test_empty_and_over_long_text_are_input_errors() -> None:
    with pytest.raises(EngineInputError, match="empty"):
        translate("  ", "en", "es")
    with pytest.raises(EngineInputError, match="limit for translation"):
        translate("word " * 100, "en", "es", options=EngineOptions(translate_max_chars=100))


def test_same_language_is_returned_unchanged() -> None:
    assert translate("Hello", "en", "en-GB") == "Hello"
