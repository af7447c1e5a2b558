"""What the simulated chat model says: text derived from the request, so tests can check it.

No language model runs here. The answer is built from what the request contains:

- a JSON response format (``json_object``/``json_schema``) gets valid JSON: an instance of
  the schema, or an object with the keys the prompt shows in quotes (``"category": ...``);
- a translation request ("Translate … to German", "target language: de") gets the source
  text with its HTML tags kept and every text run marked ``[de] ``, so a test can tell which
  language it asked for;
- a vehicle-damage request gets small HTML (``<p>``, ``<ul><li>``) that quotes the lot's
  ``additional_info`` (or the user's text) and says how many images it was shown;
- anything else gets one plain sentence echoing the question.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_LANGUAGE_NAMES = {
    "english": "en", "russian": "ru", "german": "de", "french": "fr", "spanish": "es",
    "italian": "it", "portuguese": "pt", "chinese": "zh", "japanese": "ja", "korean": "ko",
    "arabic": "ar", "polish": "pl", "ukrainian": "uk", "turkish": "tr", "dutch": "nl",
    "czech": "cs", "swedish": "sv", "finnish": "fi", "danish": "da", "norwegian": "no",
    "greek": "el", "hebrew": "he", "hindi": "hi", "kazakh": "kk", "uzbek": "uz",
    "georgian": "ka", "armenian": "hy", "romanian": "ro", "hungarian": "hu",
    "bulgarian": "bg", "serbian": "sr", "vietnamese": "vi", "thai": "th", "indonesian": "id",
    "английский": "en", "русский": "ru", "немецкий": "de", "французский": "fr",
    "испанский": "es", "итальянский": "it", "китайский": "zh", "японский": "ja",
}  # fmt: skip
_LANGUAGE_CODES = frozenset(_LANGUAGE_NAMES.values())
_TRANSLATE = re.compile(r"translat\w*|перевед\w*|перевод\w*", re.IGNORECASE)
_TARGET_AFTER_VERB = re.compile(r"\b(?:to|into|на)\s+([^\W\d_][\w-]*)", re.IGNORECASE)
_TARGET_FIELD = re.compile(
    r"(?:target[ _]lang(?:uage)?|language)\s*[:=]\s*[\"']?([^\W\d_][\w-]*)", re.IGNORECASE
)
_INFO_LINE = re.compile(
    r"^\s*(?:additional[ _]info(?:rmation)?|дополнительн\w*\s+информаци\w*)"
    r"\s*[:=]\s*(.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_DAMAGE_WORDS = ("damage", "vehicle", "bumper", "scratch", "dent", "повреж", "автомоб")
_FINDINGS = (
    "Front bumper: scuffs and a shallow dent",
    "Hood: paint chips along the leading edge",
    "Left headlight: cracked lens",
    "Right front fender: scratches through the clear coat",
    "Windshield: small chip, no cracks",
    "Rear door: dent with paint intact",
    "Wheel rim: curb rash",
)
_LIST_KEYS = frozenset({"colors", "materials", "key_features", "features", "tags", "items"})


@dataclass(frozen=True, slots=True)
class Conversation:
    """The parts of a chat request the answers are derived from."""

    system_text: str
    user_text: str
    image_count: int

    @property
    def all_text(self) -> str:
        return f"{self.system_text}\n{self.user_text}"


def _content_parts(content: Any) -> tuple[list[str], int]:
    if isinstance(content, str):
        return [content], 0
    texts, images = [], 0
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") in ("text", "input_text") and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") in ("image_url", "input_image", "image"):
            images += 1
    return texts, images


def read_conversation(messages: list[Any]) -> Conversation:
    """System text, the last user message's text, and the images across all messages."""
    system: list[str] = []
    user_text = ""
    image_count = 0
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        texts, images = _content_parts(message.get("content"))
        image_count += images
        if message.get("role") in ("system", "developer"):
            system.extend(texts)
        elif message.get("role") == "user":
            user_text = "\n".join(texts)
    return Conversation("\n".join(system), user_text, image_count)


def language_code(word: str) -> str | None:
    """``German``/``de``/``pt-BR``/``немецкий`` → a language code, or None."""
    lowered = word.lower().strip("-_")
    if lowered in _LANGUAGE_NAMES:
        return _LANGUAGE_NAMES[lowered]
    primary = re.split(r"[-_]", lowered)[0]
    return lowered if primary in _LANGUAGE_CODES and len(primary) == 2 else None


def translation_target(conversation: Conversation) -> str | None:
    """The language a translation request asks for, or None if it is not one."""
    text = conversation.all_text
    verb = _TRANSLATE.search(text)
    if verb is None:
        return None
    for match in _TARGET_AFTER_VERB.finditer(text, verb.end()):
        if code := language_code(match[1]):
            return code
    for match in _TARGET_FIELD.finditer(text):
        if code := language_code(match[1]):
            return code
    # "Translate the text to the German language": any language *name* after the verb.
    for word in re.findall(r"[^\W\d_]+", text[verb.end() :]):
        if word.lower() in _LANGUAGE_NAMES:
            return _LANGUAGE_NAMES[word.lower()]
    return None


def _source_text(conversation: Conversation) -> str:
    # An instruction in the system message leaves the user message as the text to translate;
    # an instruction in the user message is its first line (or everything up to a colon).
    text = conversation.user_text
    if _TRANSLATE.search(conversation.system_text) or not _TRANSLATE.search(text):
        return text
    first_line, newline, rest = text.partition("\n")
    if newline and rest.strip():
        return rest.strip()
    _, colon, tail = first_line.partition(":")
    return tail.strip() if colon and tail.strip() else text


def mark_translated(text: str, code: str) -> str:
    """Keep HTML tags; prefix every run of text with ``[code] ``."""
    pieces = re.split(r"(<[^>]*>)", text)
    marked = []
    for piece in pieces:
        if piece.startswith("<") or not piece.strip():
            marked.append(piece)
        else:
            leading = piece[: len(piece) - len(piece.lstrip())]
            marked.append(f"{leading}[{code}] {piece.lstrip()}")
    return "".join(marked)


def _additional_info(conversation: Conversation) -> str:
    text = conversation.user_text or conversation.system_text
    quoted = re.search(r'"additional_info"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    if quoted:
        return str(json.loads(f'"{quoted[1]}"'))
    labelled = _INFO_LINE.search(text)
    return labelled[1] if labelled else text.strip()[:500]


def damage_html(conversation: Conversation) -> str:
    """Sanitisable HTML quoting the lot's notes and counting its images."""
    count = conversation.image_count
    info = _additional_info(conversation)
    digest = hashlib.sha256(conversation.all_text.encode("utf-8")).digest()
    start = digest[0] % len(_FINDINGS)
    findings = [_FINDINGS[(start + step) % len(_FINDINGS)] for step in range(2 + digest[1] % 2)]
    parts = [
        f"<p><b>Simulated damage assessment</b> based on {count} "
        f"image{'' if count == 1 else 's'}.</p>"
    ]
    if info:
        parts.append(f"<p>Vehicle notes: {html.escape(info)}</p>")
    parts.append("<ul>" + "".join(f"<li>{finding}</li>" for finding in findings) + "</ul>")
    return "".join(parts)


def _value_for_key(key: str, conversation: Conversation) -> Any:
    words = key.replace("_", " ")
    if key in _LIST_KEYS or (key.endswith("s") and not key.endswith(("ss", "status"))):
        return [f"simulated {words} 1", f"simulated {words} 2"]
    if key.startswith(("is_", "has_")):
        return True
    if key.endswith(("count", "number")):
        return conversation.image_count
    if key in ("confidence", "score", "probability"):
        return 0.9
    return f"simulated {words} from {conversation.image_count} image(s)"


def _schema_instance(
    schema: Any, conversation: Conversation, root: Mapping[str, Any], name: str, depth: int = 0
) -> Any:
    if not isinstance(schema, Mapping) or depth > 12:
        return _value_for_key(name, conversation)
    if isinstance(schema.get("$ref"), str):
        ref: str = schema["$ref"]
        target: Any = root
        for segment in ref.removeprefix("#/").split("/"):
            target = target.get(segment) if isinstance(target, Mapping) else None
        return _schema_instance(target, conversation, root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(combinator, []) if o.get("type") != "null"]
        if options:
            return _schema_instance(options[0], conversation, root, name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties", {})
        return {
            key: _schema_instance(sub, conversation, root, key, depth + 1)
            for key, sub in properties.items()
        }
    if kind == "array":
        item = _schema_instance(schema.get("items", {}), conversation, root, name, depth + 1)
        return [item] * max(1, int(schema.get("minItems", 1)))
    if kind == "integer":
        return int(schema.get("minimum", conversation.image_count))
    if kind == "number":
        return float(schema.get("minimum", 0.9))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"simulated {name.replace('_', ' ')} from {conversation.image_count} image(s)"


def json_answer(conversation: Conversation, response_format: Mapping[str, Any]) -> str:
    """Valid JSON: a schema instance, or the keys the prompt shows, or a small summary."""
    if response_format.get("type") == "json_schema":
        wrapper = response_format.get("json_schema")
        schema = wrapper.get("schema") if isinstance(wrapper, Mapping) else None
        if isinstance(schema, Mapping):
            return json.dumps(_schema_instance(schema, conversation, schema, "value"))
    keys = list(dict.fromkeys(re.findall(r'"([A-Za-z_]\w*)"\s*:', conversation.all_text)))
    if keys:
        return json.dumps({key: _value_for_key(key, conversation) for key in keys})
    return json.dumps(
        {"answer": conversation.user_text[:200], "image_count": conversation.image_count}
    )


def answer(messages: list[Any], response_format: Any = None) -> str:
    """The assistant message content for a chat completion request."""
    conversation = read_conversation(messages)
    if isinstance(response_format, Mapping) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        return json_answer(conversation, response_format)
    if code := translation_target(conversation):
        return mark_translated(_source_text(conversation), code)
    if any(word in conversation.all_text.lower() for word in _DAMAGE_WORDS):
        return damage_html(conversation)
    count = conversation.image_count
    return (
        f"Simulated answer ({count} image{'' if count == 1 else 's'} seen): "
        f"{conversation.user_text.strip()[:200]}"
    )
