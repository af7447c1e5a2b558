"""Model output turned into the small, safe HTML the descriptions API promises.

A language model writes whatever it likes: HTML, Markdown, plain text, or a mix, and it
can be talked into writing ``<script>`` by text inside an image. ``sanitize_description_html``
never trusts it. Three steps:

1. Text with no tags is treated as plain text: it is HTML-escaped, split into paragraphs on
   blank lines, and a little Markdown is understood (``**bold**``/``__bold__`` → ``<b>``,
   ``*italic*``/``_italic_`` → ``<i>``, lines starting ``-``, ``*``, ``+``, ``•`` or ``1.``
   → ``<ul><li>``, ``# Heading`` → a bold paragraph, single newlines → ``<br>``).
2. Text with tags keeps them, after ``<strong>``/``<em>``/``<ol>``/``<h1>``… are renamed to
   their allowed equivalents and ``**bold**`` is understood, so emphasis is not lost.
3. Either way, nh3 (ammonia) has the last word: only ``<p> <ul> <li> <b> <i> <br>`` survive,
   with no attributes at all; scripts, styles and other executable or invisible elements go
   with their content; everything else is reduced to its escaped text.

Steps 1 and 2 may produce anything; only step 3 decides what is safe.
"""

from __future__ import annotations

import html
import re

import nh3

__all__ = ["ALLOWED_TAGS", "sanitize_description_html"]

ALLOWED_TAGS = frozenset({"p", "ul", "li", "b", "i", "br"})

# Elements whose content is code, metadata or form state rather than prose.
_DROPPED_WITH_CONTENT = frozenset(
    {
        "script",
        "style",
        "template",
        "noscript",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "svg",
        "math",
        "head",
        "title",
        "textarea",
        "select",
        "xmp",
        "noembed",
        "noframes",
        "plaintext",
    }
)

_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(_DROPPED_WITH_CONTENT),
    # "*" must be given explicitly: ammonia's default keeps ``title`` and ``lang`` on every
    # tag. The filter is a second lock on the same door.
    attributes={"*": set()},
    attribute_filter=lambda _tag, _attr, _value: None,
    strip_comments=True,
    link_rel=None,
    url_schemes=set(),
)

# Every repeated part stops at the next delimiter ("[^<>]", "[^*]", "[^_]"), so a hostile
# string of thousands of unclosed "<a" or "**x" costs linear, not quadratic, time.
_HAS_TAG = re.compile(r"<\s*/?\s*[a-zA-Z!][^<>]*>")
# Bold never spans markup: "**<br>**" in HTML must stay text, or a second pass would eat it.
_BOLD = re.compile(
    r"\*\*(?=[^\s*<>])([^*<>]+?)(?<=[^\s<>])\*\*|__(?=[^\s_<>])([^_<>]+?)(?<=[^\s<>])__"
)
_ITALIC = re.compile(
    r"(?<![*\w])\*(?=\S)([^*]+?)(?<=\S)\*(?![*\w])|(?<!\w)_(?=\S)([^_]+?)(?<=\S)_(?!\w)"
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+(.*)$")
_HEADING = re.compile(r"^\s*#{1,6}\s+(.*?)\s*#*\s*$")
_BLANK_LINES = re.compile(r"\n\s*\n")
_BLOCK_TAG = re.compile(r"<(?:p|ul|li)>")

# Tags renamed to their allowed equivalents in HTML input: (opening or closing tag, new name).
_RENAMES = (
    (re.compile(r"<(/?)\s*strong\b[^<>]*>", re.IGNORECASE), "b"),
    (re.compile(r"<(/?)\s*em\b[^<>]*>", re.IGNORECASE), "i"),
    (re.compile(r"<(/?)\s*ol\b[^<>]*>", re.IGNORECASE), "ul"),
)
_HEADING_OPEN = re.compile(r"<\s*h[1-6]\b[^<>]*>", re.IGNORECASE)
_HEADING_CLOSE = re.compile(r"<\s*/\s*h[1-6]\s*>", re.IGNORECASE)


def sanitize_description_html(text: str) -> str:
    """Safe description HTML: only ``<p> <ul> <li> <b> <i> <br>``, never an attribute."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return ""
    is_html = bool(_HAS_TAG.search(text))
    prepared = _from_html(text) if is_html else _from_plain_text(text)
    cleaned = _CLEANER.clean(prepared).strip()
    if is_html:
        # Markdown bold inside HTML is converted on the cleaned (escaped) text, the same
        # form plain text is converted in, so a second pass finds nothing left to change.
        cleaned = _BOLD.sub(_bold, cleaned)
    if cleaned and not _BLOCK_TAG.search(cleaned):
        # Inline-only HTML ("Front <b>bumper</b> dented") still becomes a paragraph, so
        # every description has the same shape. Wrapping sanitised text adds no risk.
        cleaned = f"<p>{cleaned}</p>"
    return cleaned


def _from_html(text: str) -> str:
    for pattern, name in _RENAMES:
        text = pattern.sub(rf"<\1{name}>", text)
    text = _HEADING_OPEN.sub("<p><b>", text)
    return _HEADING_CLOSE.sub("</b></p>", text)


def _from_plain_text(text: str) -> str:
    blocks = [block for block in _BLANK_LINES.split(text) if block.strip()]
    return "".join(_block(block) for block in blocks)


def _block(block: str) -> str:
    """One paragraph of plain text: runs of list lines become lists, the rest paragraphs."""
    out: list[str] = []
    lines: list[str] = []
    items: list[str] = []

    def flush_lines() -> None:
        if lines:
            out.append("<p>" + "<br>".join(lines) + "</p>")
            lines.clear()

    def flush_items() -> None:
        if items:
            out.append("<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>")
            items.clear()

    for raw in block.split("\n"):
        if not raw.strip():
            continue
        if heading := _HEADING.match(raw):
            flush_lines()
            flush_items()
            out.append(f"<p><b>{_inline(heading.group(1))}</b></p>")
        elif item := _LIST_ITEM.match(raw):
            flush_lines()
            items.append(_inline(item.group(1)))
        else:
            flush_items()
            lines.append(_inline(raw.strip()))
    flush_lines()
    flush_items()
    return "".join(out)


def _inline(line: str) -> str:
    escaped = html.escape(line, quote=False)
    return _ITALIC.sub(_italic, _BOLD.sub(_bold, escaped))


def _bold(match: re.Match[str]) -> str:
    return f"<b>{match.group(1) or match.group(2)}</b>"


def _italic(match: re.Match[str]) -> str:
    return f"<i>{match.group(1) or match.group(2)}</i>"
