"""What an item was charged, read from its step runs (``jobs.items.charge_of``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conveyor.jobs.items import charge_of
from conveyor.jobs.models import (
    MIXED_CURRENCIES,
    STEP_CANCELLED,
    STEP_FAILED,
    STEP_SUCCEEDED,
    StepRunRow,
)
from conveyor.jobs.repository import Charge

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _run(
    status: str = STEP_SUCCEEDED,
    cost: float | None = 0.5,
    item_run: int = 0,
    **output: Any,
) -> StepRunRow:
    return StepRunRow(
        id=f"r{item_run}{status}{cost}",
        item_id="i",
        step="s",
        model_id="m",
        chain_index=0,
        item_run=item_run,
        attempt=1,
        status=status,
        retryable=False,
        external_task_id=None,
        provider_state=None,
        output={"cost": cost, **output},
        error=None,
        cost=cost,
        started_at=NOW,
        finished_at=NOW,
        reuse_key=None,
    )


def test_every_run_counts_and_only_succeeded_calls_are_charged() -> None:
    runs = [
        _run(cost=0.25, item_run=0, currency="USD"),  # paid, then the item was retried
        _run(STEP_FAILED, cost=None, item_run=0),
        _run(STEP_CANCELLED, cost=None, item_run=0),
        _run(cost=0.5, item_run=1),  # no currency named: the default
    ]
    assert charge_of(runs) == Charge(0.75, "USD", 0)


def test_an_unpriced_call_makes_the_total_unknown_and_reuse_is_free() -> None:
    assert charge_of([_run(cost=0.1), _run(cost=None)]) == Charge(0.1, "USD", 1)
    assert charge_of([_run(cost=None, reused_from="earlier")]) == Charge(0.0, None, 0)
    assert charge_of([_run(cost=0.0)]) == Charge(0.0, None, 0)


def test_charges_in_two_currencies_have_no_one_total() -> None:
    runs = [_run(cost=1.0, currency="USD"), _run(cost=2.0, currency="EUR")]
    assert charge_of(runs).currency == MIXED_CURRENCIES
