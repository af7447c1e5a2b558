"""Everything the console loads is served by Conveyor itself, and vendored files are the
ones written down."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import conveyor.web

WEB = Path(conveyor.web.__file__).parent
STATIC = WEB / "static"
TEMPLATES = WEB / "templates"
# Namespace names are identifiers that are never fetched; nothing else may name a server.
_NAMESPACES = {"http://www.w3.org/2000/svg"}
_ADDRESS = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'<>)]*")


def _shipped() -> list[Path]:
    return sorted(
        p
        for folder in (STATIC, TEMPLATES)
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in {".html", ".js", ".css", ".svg"}
    )


def test_no_template_or_static_file_refers_to_another_server() -> None:
    found = {
        str(path.relative_to(WEB)): address
        for path in _shipped()
        for address in _ADDRESS.findall(path.read_text(encoding="utf-8"))
        if address not in _NAMESPACES
    }
    assert found == {}


def test_the_address_check_would_catch_a_cdn() -> None:
    page = (
        '<script src="https://cdn.example.com/htmx.js"></script><link href="//fonts.gstatic.com/x">'
    )
    assert _ADDRESS.findall(page) == ["https://cdn.example.com/htmx.js", "//fonts.gstatic.com/x"]


def test_vendored_files_match_their_recorded_sha256() -> None:
    table = (STATIC / "VENDORED.md").read_text()
    recorded = dict(re.findall(r"\| `([^`]+)` \|[^\n]*\| `([0-9a-f]{64})` \|", table))
    assert "htmx.min.js" in recorded
    for name, digest in recorded.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name


def test_every_static_file_is_listed() -> None:
    table = (STATIC / "VENDORED.md").read_text()
    listed = set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE))
    assert listed == {p.name for p in STATIC.iterdir() if p.suffix != ".md"}


def test_templates_use_no_inline_script_or_style() -> None:
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text()
        assert re.search(r"<script(?![^>]*\bsrc=)", text) is None, path.name
        assert " style=" not in text, path.name
        assert "<style" not in text, path.name
        assert re.search(r"\son[a-z]+=", text) is None, path.name
