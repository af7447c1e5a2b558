"""Language tags: normalisation, rejection with every bad code named, English names."""

from __future__ import annotations

import pytest

from conveyor.content.languages import (
    LANGUAGE_NAMES,
    UnknownLanguage,
    is_known_language,
    language_name,
    normalize_language,
    normalize_languages,
    primary,
)


@pytest.mark.parametrize(
    ("code", "canonical"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("pt-BR", "pt-BR"),
        ("pt-br", "pt-BR"),
        ("pt_br", "pt-BR"),
        ("PT_BR", "pt-BR"),
        ("zh-hans", "zh-Hans"),
        ("zh-HANT-tw", "zh-Hant-TW"),
        ("sr-latn-rs", "sr-Latn-RS"),
        ("es-419", "es-419"),
        ("de-CH-1996", "de-CH-1996"),
        ("en-US-x-Twain", "en-US-x-twain"),
        ("fil", "fil"),
        ("yue-HK", "yue-HK"),
        ("zh-yue", "zh-yue"),
        ("iw", "iw"),
        (" ru ", "ru"),
    ],
)
def test_tags_are_put_in_canonical_case(code: str, canonical: str) -> None:
    assert normalize_language(code) == canonical
    assert is_known_language(code)


@pytest.mark.parametrize(
    "code",
    [
        "xx",
        "qq",
        "english",
        "",
        "e",
        "en-",
        "-en",
        "en--us",
        "en-US-",
        "123",
        "en-a",
        "zzz",
        "en-US-x",
        "en us",
        "en" + "-abcdefgh" * 10,
    ],
)
def test_unknown_or_malformed_codes_are_refused(code: str) -> None:
    assert not is_known_language(code)
    with pytest.raises(UnknownLanguage) as caught:
        normalize_language(code)
    assert caught.value.status_code == 400
    assert caught.value.codes == (code,)
    assert repr(code) in caught.value.message


def test_every_bad_code_is_named_in_one_error() -> None:
    with pytest.raises(UnknownLanguage) as caught:
        normalize_languages(["en", "xx", "ru", "klingon", "de"])
    assert caught.value.codes == ("xx", "klingon")
    assert caught.value.message.startswith("unknown language codes: 'xx', 'klingon' (")
    assert caught.value.details == {"codes": ["xx", "klingon"]}
    assert caught.value.code == "UNKNOWN_LANGUAGE"


def test_lists_are_normalised_and_deduplicated_in_order() -> None:
    assert normalize_languages(["ru", "EN", "pt_br", "en", "pt-BR", "de"]) == [
        "ru",
        "en",
        "pt-BR",
        "de",
    ]
    assert normalize_languages([]) == []


def test_the_seeds_popular_codes_are_known() -> None:
    for code in ["en", "ru", "de", "fr", "es", "it", "pt", "zh", "ja", "ko"]:
        assert normalize_language(code) == code


def test_the_table_covers_iso_639_1_and_more_than_100_languages() -> None:
    two_letter = [code for code in LANGUAGE_NAMES if len(code) == 2]
    assert len(two_letter) >= 184
    assert len(set(LANGUAGE_NAMES.values())) > 150
    assert all(code.islower() and code.isalpha() for code in LANGUAGE_NAMES)


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("en", "English"),
        ("RU", "Russian"),
        ("pt-BR", "Portuguese (Brazil)"),
        ("zh-Hans", "Chinese (Simplified)"),
        ("zh_hant_tw", "Chinese (Traditional, Taiwan)"),
        ("sr-Latn-RS", "Serbian (Latin, Serbia)"),
        ("es-419", "Spanish (Latin America)"),
        ("en-ZW", "English (ZW)"),
        ("az-Qaaa", "Azerbaijani (Qaaa)"),
        ("nb", "Norwegian Bokmål"),
    ],
)
def test_language_names_for_prompts(code: str, name: str) -> None:
    assert language_name(code) == name


def test_primary_language() -> None:
    assert primary("pt-BR") == "pt"
    assert primary("ZH_hant") == "zh"
    assert primary("fil") == "fil"
    with pytest.raises(UnknownLanguage):
        primary("xx-YY")


def test_the_content_package_exports_what_all_lists() -> None:
    import conveyor.content as content

    exported = {name for name in dir(content) if not name.startswith("_")}
    modules = {"html", "images", "languages", "serving", "sniff", "annotations"}
    assert set(content.__all__) == exported - modules
