"""URLs a client hands Conveyor to call later (webhooks), checked when they are handed in.

A webhook is only fetched when its job finishes, maybe hours later; a URL the SSRF policy
refuses (a loopback or private address, a name that resolves to one, a name that does not
exist) is refused at submission instead, as a validation error naming the field, so the
client learns of it at once and nothing is created. Delivery checks again, because what a
name resolves to may change in between.
"""

from __future__ import annotations

from conveyor.errors import ValidationFailed
from conveyor.net.errors import UrlRefused
from conveyor.net.fetcher import SafeFetcher

__all__ = ["check_callback_url"]


async def check_callback_url(fetcher: SafeFetcher, url: str, *, field: str) -> None:
    """Raise ``ValidationFailed`` (422) naming ``field`` unless ``fetcher`` may call ``url``."""
    try:
        await fetcher.check_destination(url)
    except UrlRefused as exc:
        raise ValidationFailed(
            f"{field}: {exc.message}",
            details={"errors": [{"loc": f"body.{field}", "msg": exc.message}]},
        ) from exc
