"""Language codes as clients send them, checked and put into one spelling.

Clients send ISO 639-1 codes (``en``, ``ru``) and BCP-47 tags (``pt-BR``, ``zh-Hans``,
``sr-Latn-RS``), in any case, sometimes with ``_`` (``pt_br``, the POSIX locale habit).
``normalize_language`` checks the tag against the RFC 5646 grammar, requires its primary
language to be one this module knows (every ISO 639-1 code plus common three-letter ones
such as ``fil`` and ``yue``), and returns it in canonical case: language lower, script
title, region upper (``sr-Latn-RS``). Deprecated codes (``iw``, ``in``) are accepted as
sent, not rewritten, so a client gets back the code it asked for.

``language_name`` gives the English name a translation prompt needs, with the script and
region spelled out: ``zh-Hant-TW`` → "Chinese (Traditional, Taiwan)".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from conveyor.errors import BadRequest

__all__ = [
    "LANGUAGE_NAMES",
    "UnknownLanguage",
    "is_known_language",
    "language_name",
    "normalize_language",
    "normalize_languages",
    "primary",
]

_NAMES = {
    # ISO 639-1, complete.
    "aa": "Afar", "ab": "Abkhazian", "ae": "Avestan", "af": "Afrikaans", "ak": "Akan",
    "am": "Amharic", "an": "Aragonese", "ar": "Arabic", "as": "Assamese", "av": "Avaric",
    "ay": "Aymara", "az": "Azerbaijani", "ba": "Bashkir", "be": "Belarusian",
    "bg": "Bulgarian", "bh": "Bihari", "bi": "Bislama", "bm": "Bambara", "bn": "Bengali",
    "bo": "Tibetan", "br": "Breton", "bs": "Bosnian", "ca": "Catalan", "ce": "Chechen",
    "ch": "Chamorro", "co": "Corsican", "cr": "Cree", "cs": "Czech", "cu": "Church Slavic",
    "cv": "Chuvash", "cy": "Welsh", "da": "Danish", "de": "German", "dv": "Divehi",
    "dz": "Dzongkha", "ee": "Ewe", "el": "Greek", "en": "English", "eo": "Esperanto",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "ff": "Fulah",
    "fi": "Finnish", "fj": "Fijian", "fo": "Faroese", "fr": "French",
    "fy": "Western Frisian", "ga": "Irish", "gd": "Scottish Gaelic", "gl": "Galician",
    "gn": "Guarani", "gu": "Gujarati", "gv": "Manx", "ha": "Hausa", "he": "Hebrew",
    "hi": "Hindi", "ho": "Hiri Motu", "hr": "Croatian", "ht": "Haitian Creole",
    "hu": "Hungarian", "hy": "Armenian", "hz": "Herero", "ia": "Interlingua",
    "id": "Indonesian", "ie": "Interlingue", "ig": "Igbo", "ii": "Sichuan Yi",
    "ik": "Inupiaq", "io": "Ido", "is": "Icelandic", "it": "Italian", "iu": "Inuktitut",
    "ja": "Japanese", "jv": "Javanese", "ka": "Georgian", "kg": "Kongo", "ki": "Kikuyu",
    "kj": "Kuanyama", "kk": "Kazakh", "kl": "Kalaallisut", "km": "Khmer", "kn": "Kannada",
    "ko": "Korean", "kr": "Kanuri", "ks": "Kashmiri", "ku": "Kurdish", "kv": "Komi",
    "kw": "Cornish", "ky": "Kyrgyz", "la": "Latin", "lb": "Luxembourgish", "lg": "Ganda",
    "li": "Limburgish", "ln": "Lingala", "lo": "Lao", "lt": "Lithuanian",
    "lu": "Luba-Katanga", "lv": "Latvian", "mg": "Malagasy", "mh": "Marshallese",
    "mi": "Maori", "mk": "Macedonian", "ml": "Malayalam", "mn": "Mongolian",
    "mr": "Marathi", "ms": "Malay", "mt": "Maltese", "my": "Burmese", "na": "Nauru",
    "nb": "Norwegian Bokmål", "nd": "North Ndebele", "ne": "Nepali", "ng": "Ndonga",
    "nl": "Dutch", "nn": "Norwegian Nynorsk", "no": "Norwegian", "nr": "South Ndebele",
    "nv": "Navajo", "ny": "Chichewa", "oc": "Occitan", "oj": "Ojibwa", "om": "Oromo",
    "or": "Odia", "os": "Ossetian", "pa": "Punjabi", "pi": "Pali", "pl": "Polish",
    "ps": "Pashto", "pt": "Portuguese", "qu": "Quechua", "rm": "Romansh", "rn": "Rundi",
    "ro": "Romanian", "ru": "Russian", "rw": "Kinyarwanda", "sa": "Sanskrit",
    "sc": "Sardinian", "sd": "Sindhi", "se": "Northern Sami", "sg": "Sango",
    "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian", "sm": "Samoan", "sn": "Shona",
    "so": "Somali", "sq": "Albanian", "sr": "Serbian", "ss": "Swati",
    "st": "Southern Sotho", "su": "Sundanese", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "tg": "Tajik", "th": "Thai", "ti": "Tigrinya",
    "tk": "Turkmen", "tl": "Tagalog", "tn": "Tswana", "to": "Tongan", "tr": "Turkish",
    "ts": "Tsonga", "tt": "Tatar", "tw": "Twi", "ty": "Tahitian", "ug": "Uyghur",
    "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "ve": "Venda", "vi": "Vietnamese",
    "vo": "Volapük", "wa": "Walloon", "wo": "Wolof", "xh": "Xhosa", "yi": "Yiddish",
    "yo": "Yoruba", "za": "Zhuang", "zh": "Chinese", "zu": "Zulu",
    # Withdrawn ISO 639-1 codes that translation services still use.
    "iw": "Hebrew", "in": "Indonesian", "ji": "Yiddish", "jw": "Javanese",
    "mo": "Moldovan", "sh": "Serbo-Croatian",
    # Three-letter codes for languages with no two-letter one that translators offer.
    "ast": "Asturian", "bho": "Bhojpuri", "ceb": "Cebuano", "ckb": "Central Kurdish",
    "crh": "Crimean Tatar", "doi": "Dogri", "fil": "Filipino", "gom": "Goan Konkani",
    "haw": "Hawaiian", "hmn": "Hmong", "hsb": "Upper Sorbian", "ilo": "Ilocano",
    "kok": "Konkani", "kri": "Krio", "lus": "Mizo", "mai": "Maithili", "mni": "Manipuri",
    "nds": "Low German", "nso": "Northern Sotho", "sah": "Yakut", "sco": "Scots",
    "tet": "Tetum", "yue": "Cantonese",
}  # fmt: skip

LANGUAGE_NAMES: Mapping[str, str] = MappingProxyType(_NAMES)

_SCRIPTS = {
    "Arab": "Arabic", "Armn": "Armenian", "Beng": "Bengali", "Cyrl": "Cyrillic",
    "Deva": "Devanagari", "Ethi": "Ethiopic", "Geor": "Georgian", "Grek": "Greek",
    "Guru": "Gurmukhi", "Hans": "Simplified", "Hant": "Traditional", "Hebr": "Hebrew",
    "Jpan": "Japanese", "Kore": "Korean", "Latn": "Latin", "Mong": "Mongolian",
    "Taml": "Tamil", "Thaa": "Thaana", "Thai": "Thai", "Tibt": "Tibetan",
}  # fmt: skip

_REGIONS = {
    "AE": "United Arab Emirates", "AR": "Argentina", "AT": "Austria", "AU": "Australia",
    "BE": "Belgium", "BR": "Brazil", "BY": "Belarus", "CA": "Canada", "CH": "Switzerland",
    "CL": "Chile", "CN": "China", "CO": "Colombia", "CZ": "Czechia", "DE": "Germany",
    "DK": "Denmark", "EG": "Egypt", "ES": "Spain", "FI": "Finland", "FR": "France",
    "GB": "United Kingdom", "GR": "Greece", "HK": "Hong Kong", "IE": "Ireland",
    "IL": "Israel", "IN": "India", "IT": "Italy", "JP": "Japan", "KR": "South Korea",
    "KZ": "Kazakhstan", "MA": "Morocco", "ME": "Montenegro", "MO": "Macao", "MX": "Mexico",
    "MY": "Malaysia", "NL": "Netherlands", "NO": "Norway", "NZ": "New Zealand",
    "PE": "Peru", "PH": "Philippines", "PL": "Poland", "PT": "Portugal", "RO": "Romania",
    "RS": "Serbia", "RU": "Russia", "SA": "Saudi Arabia", "SE": "Sweden", "SG": "Singapore",
    "TR": "Turkey", "TW": "Taiwan", "UA": "Ukraine", "US": "United States",
    "UZ": "Uzbekistan", "VE": "Venezuela", "VN": "Vietnam", "ZA": "South Africa",
    "419": "Latin America",
}  # fmt: skip

# RFC 5646 "langtag" on a lower-cased tag. Four- and five-to-eight-letter primary languages
# exist in the grammar but are reserved or registered-only; none is in the table above,
# so they are left out here and reported as unknown.
_LANGTAG = re.compile(
    r"""
    (?P<language>[a-z]{2,3})
    (?P<extlang>(?:-[a-z]{3}){0,3})
    (?:-(?P<script>[a-z]{4}))?
    (?:-(?P<region>[a-z]{2}|[0-9]{3}))?
    (?P<variants>(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*)
    (?P<extensions>(?:-[a-wyz0-9](?:-[a-z0-9]{2,8})+)*)
    (?P<private>-x(?:-[a-z0-9]{1,8})+)?
    """,
    re.VERBOSE,
)
_MAX_TAG_LENGTH = 64


class UnknownLanguage(BadRequest):
    """One or more language codes that are malformed or name no language we know."""

    code = "UNKNOWN_LANGUAGE"

    def __init__(self, codes: Iterable[str]) -> None:
        self.codes = tuple(codes)
        listed = ", ".join(repr(code) for code in self.codes)
        noun = "code" if len(self.codes) == 1 else "codes"
        super().__init__(
            f"unknown language {noun}: {listed} "
            "(use ISO 639-1 codes or BCP-47 tags such as en, pt-BR, zh-Hans)",
            details={"codes": list(self.codes)},
        )


def normalize_language(code: str) -> str:
    """The tag in canonical case (``pt_br`` → ``pt-BR``); ``UnknownLanguage`` if it is not one."""
    parsed = _parse(code)
    if parsed is None:
        raise UnknownLanguage([code])
    return parsed


def normalize_languages(codes: Iterable[str]) -> list[str]:
    """Every tag normalised, duplicates dropped (first wins), all bad codes in one error."""
    result: list[str] = []
    bad: list[str] = []
    for code in codes:
        parsed = _parse(code)
        if parsed is None:
            bad.append(code)
        elif parsed not in result:
            result.append(parsed)
    if bad:
        raise UnknownLanguage(bad)
    return result


def is_known_language(code: str) -> bool:
    """Whether ``normalize_language`` would accept ``code``."""
    return _parse(code) is not None


def primary(code: str) -> str:
    """The primary language subtag, lower-case: ``pt-BR`` → ``pt``."""
    return normalize_language(code).split("-", 1)[0].lower()


def language_name(code: str) -> str:
    """English name for prompts: ``pt-BR`` → "Portuguese (Brazil)", ``zh-Hans`` → "Chinese
    (Simplified)"."""
    tag = normalize_language(code)
    match = _LANGTAG.fullmatch(tag.lower())
    assert match is not None  # normalize_language accepted it
    qualifiers: list[str] = []
    if script := match.group("script"):
        qualifiers.append(_SCRIPTS.get(script.title(), script.title()))
    if region := match.group("region"):
        qualifiers.append(_REGIONS.get(region.upper(), region.upper()))
    name = _NAMES[match.group("language")]
    return f"{name} ({', '.join(qualifiers)})" if qualifiers else name


def _parse(code: object) -> str | None:
    if not isinstance(code, str):
        return None
    tag = code.strip().replace("_", "-").lower()
    if not tag or len(tag) > _MAX_TAG_LENGTH:
        return None
    match = _LANGTAG.fullmatch(tag)
    if match is None or match.group("language") not in _NAMES:
        return None
    parts = [match.group("language"), *filter(None, match.group("extlang").split("-"))]
    if script := match.group("script"):
        parts.append(script.title())
    if region := match.group("region"):
        parts.append(region.upper())
    # Variants, extensions and private use stay lower-case, as RFC 5646 recommends.
    rest = match.group("variants") + match.group("extensions") + (match.group("private") or "")
    return "-".join(parts) + rest
