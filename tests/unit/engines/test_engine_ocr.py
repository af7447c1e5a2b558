"""OCR: both engines read a rendered word, with boxes and confidences."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_samples import BAD_PRODUCT_IMAGES, text_line

from conveyor.providers.local import EngineInputError, EngineOptions
from conveyor.providers.local.ocr import parse_languages, read_text
from tests.support.programs import requires_program

WORD = "CONVEYOR"
# Pillow's built-in font has no Cyrillic glyphs.
CYRILLIC_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
OPTIONS = EngineOptions()


def test_rapidocr_reads_the_rendered_word() -> None:
    result = read_text(text_line(WORD), options=OPTIONS)
    assert result.engine == "rapidocr"
    assert WORD in result.text
    line = result.lines[0]
    assert 0.5 <= line.confidence <= 1.0
    assert len(line.box) == 4
    xs = [x for x, _ in line.box]
    assert 0 <= min(xs) < max(xs) <= 720


@requires_program("tesseract")
@pytest.mark.parametrize("languages", ["eng", "en", ["en", "ru"], "eng+deu"])
def test_tesseract_reads_the_rendered_word(languages: object) -> None:
    result = read_text(text_line(WORD), engine="tesseract", languages=languages, options=OPTIONS)
    assert WORD in result.text
    assert all(0.0 <= line.confidence <= 1.0 for line in result.lines)


@requires_program("tesseract")
@pytest.mark.skipif(not Path(CYRILLIC_FONT).is_file(), reason="DejaVu fonts not installed")
def test_tesseract_reads_cyrillic() -> None:
    image = text_line("МОЛОКО", font=CYRILLIC_FONT)
    result = read_text(image, engine="tesseract", languages="rus", options=OPTIONS)
    assert "МОЛОКО" in result.text


@requires_program("tesseract")
def test_missing_tesseract_language_names_the_package() -> None:
    with pytest.raises(EngineInputError, match="tesseract-ocr-"):
        read_text(text_line(WORD), engine="tesseract", languages="xx", options=OPTIONS)


@pytest.mark.parametrize("name", list(BAD_PRODUCT_IMAGES))
def test_bad_images_are_input_errors(name: str) -> None:
    with pytest.raises(EngineInputError):
        read_text(BAD_PRODUCT_IMAGES[name], options=OPTIONS)


def test_bad_options_are_input_errors() -> None:
    with pytest.raises(EngineInputError, match="unknown OCR engine"):
        read_text(text_line(WORD), engine="easyocr", options=OPTIONS)
    with pytest.raises(EngineInputError, match="empty"):
        parse_languages(" + ")
