"""What the job page shows of an item: before, after, provenance, errors in words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conveyor.assets.models import Asset
from conveyor.jobs.models import ItemRow
from conveyor.web.views import asset_ids_of, item_view

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _item(input: dict[str, Any], output: dict[str, Any] | None, **extra: Any) -> ItemRow:
    values: dict[str, Any] = {
        "id": "i1",
        "job_id": "j1",
        "seq": 0,
        "key": None,
        "status": "completed",
        "stage": None,
        "input": input,
        "output": output,
        "error": None,
        "error_code": None,
        "model_used": None,
        "cost": 0.0,
        "runs": 1,
        "created_at": NOW,
        "updated_at": NOW,
        "started_at": None,
        "finished_at": None,
    }
    values.update(extra)
    return ItemRow(**values)


def _asset(asset_id: str, mime: str = "image/png") -> Asset:
    return Asset(
        asset_id, "c", "0" * 64, mime, 10, "k", "generated", None, None, None, None, None, NOW
    )


def test_before_and_after_come_from_input_and_output_references() -> None:
    item = _item(
        {"image": {"asset_id": "a-in"}, "filename": "mug.jpg"},
        {
            "original": {"asset_id": "a-in", "mime_type": "image/png"},
            "final": {"asset_id": "a-final", "mime_type": "image/png"},
            "files": [{"asset_id": "a-final"}, {"asset_id": "a-gone"}],
            "provenance": {"background": {"model": "local/u2netp"}},
        },
    )
    assets = {a: _asset(a) for a in ("a-in", "a-final")}
    view = item_view(item, assets)
    assert [(f.asset_id, f.label) for f in view.before] == [("a-in", "image")]
    assert [(f.asset_id, f.label) for f in view.after] == [
        ("a-in", "original"),
        ("a-final", "final"),
    ]
    assert asset_ids_of([item]) == ["a-final", "a-gone", "a-in"]


def test_provenance_names_the_model_and_the_fallbacks_taken() -> None:
    item = _item(
        {},
        {
            "provenance": {
                "background": {
                    "model": "local/u2netp",
                    "fallback_from": [
                        {"model": "fal/birefnet", "error": "no API key"},
                        {"model": "replicate/remove-background", "error": "HTTP 500"},
                    ],
                }
            }
        },
    )
    (step,) = item_view(item, {}).steps
    assert step.model == "local/u2netp"
    assert step.fallbacks == [
        ("fal/birefnet", "no API key"),
        ("replicate/remove-background", "HTTP 500"),
    ]


def test_errors_are_said_in_words() -> None:
    failed = _item(
        {}, None, status="failed", error="step 'x' failed: a: boom", error_code="STEP_FAILED"
    )
    words = item_view(failed, {}).error_words
    assert words is not None
    assert words.startswith("Every model that could do this step failed.")
    assert words.endswith("a: boom")
    assert item_view(_item({}, None), {}).error_words is None
