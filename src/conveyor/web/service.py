"""What the console's pages read, gathered from the domain services.

Every method takes the caller's connection (the route opens it) and the viewer's client:
a person sees only their own jobs and files, exactly as the API shows them to their key.
Writing (uploads, new jobs, cancel, retry) goes through the domain services themselves,
from the routes; this service only shapes what is read and builds job requests from forms.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from conveyor.assets.models import Asset
from conveyor.assets.service import AssetService
from conveyor.catalog.service import CatalogService
from conveyor.clients.service import Client
from conveyor.errors import BadRequest, NotFound
from conveyor.jobs.items import ItemService
from conveyor.jobs.models import JOB_PENDING, JOB_PROCESSING, JobRow
from conveyor.jobs.schemas import JobCreate
from conveyor.jobs.service import JobService
from conveyor.web import views
from conveyor.web.forms import RunForm, model_form, recipe_form

PHOTO_RECIPE = "product-photo"
ITEMS_PER_PAGE = 100
JOBS_PER_PAGE = 50
GALLERY_PER_PAGE = 60
BADGES_SHOWN = 6
# The recipe filter reads this many of the newest jobs at most per page (see list_jobs).
_RECIPE_SCAN_LIMIT = 2000
_MODEL_RECIPE = "model"
_SEED_AUTO = ("", "auto")


@dataclass(frozen=True, slots=True)
class JobsPage:
    jobs: list[views.JobView]
    next_cursor: str | None
    scanned: int | None = None  # set when a recipe filter stopped scanning early


def _gallery_cursor(asset: Asset) -> str:
    raw = json.dumps({"t": asset.created_at.isoformat(), "id": asset.id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_gallery_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = datetime.fromisoformat(str(raw["t"]))
        asset_id = str(raw["id"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadRequest("invalid cursor", code="INVALID_CURSOR") from exc
    if moment.tzinfo is None:
        raise BadRequest("invalid cursor", code="INVALID_CURSOR")
    return moment, asset_id


class ConsoleService:
    def __init__(
        self,
        jobs: JobService,
        items: ItemService,
        assets: AssetService,
        catalog: CatalogService,
    ) -> None:
        self.jobs = jobs
        self.items = items
        self.assets = assets
        self.catalog = catalog

    # -- titles and badges ---------------------------------------------------------------

    def title_of(self, job: JobRow) -> str:
        if job.recipe == _MODEL_RECIPE and job.model:
            return job.model
        recipe = self.jobs.recipes.get(job.recipe)
        return recipe.title if recipe is not None else job.recipe

    def job_view(self, job: JobRow) -> views.JobView:
        return views.JobView(job, self.title_of(job), views.progress_of(job))

    async def badges(self, conn: AsyncConnection, client: Client) -> list[views.Badge]:
        """The client's running batches, newest first."""
        running: list[JobRow] = []
        for status in (JOB_PROCESSING, JOB_PENDING):
            rows, _ = await self.jobs.list_jobs(conn, client, status=status, limit=BADGES_SHOWN)
            running.extend(rows)
        running.sort(key=lambda j: (j.created_at, j.id), reverse=True)
        return [views.badge_of(job, self.title_of(job)) for job in running[:BADGES_SHOWN]]

    # -- jobs ---------------------------------------------------------------------------

    async def list_jobs(
        self,
        conn: AsyncConnection,
        client: Client,
        *,
        status: str | None,
        recipe: str | None,
        source: str | None,
        cursor: str | None,
    ) -> JobsPage:
        """A page of the client's jobs, newest first, filtered.

        ``JobService.list_jobs`` filters by status and source but not by recipe, so a recipe
        filter reads pages of jobs and keeps the matching ones, up to a page of matches or
        ``_RECIPE_SCAN_LIMIT`` jobs read (the page then says how many it searched)."""
        if recipe is None:
            rows, next_cursor = await self.jobs.list_jobs(
                conn, client, status=status, source=source, limit=JOBS_PER_PAGE, cursor=cursor
            )
            return JobsPage([self.job_view(r) for r in rows], next_cursor)
        matches: list[JobRow] = []
        scanned = 0
        next_cursor = cursor
        while True:
            rows, next_cursor = await self.jobs.list_jobs(
                conn, client, status=status, source=source, limit=200, cursor=next_cursor
            )
            scanned += len(rows)
            matches.extend(r for r in rows if r.recipe == recipe)
            if len(matches) >= JOBS_PER_PAGE or next_cursor is None:
                break
            if scanned >= _RECIPE_SCAN_LIMIT:
                return JobsPage([self.job_view(r) for r in matches], next_cursor, scanned)
        return JobsPage([self.job_view(r) for r in matches], next_cursor)

    async def job(
        self, conn: AsyncConnection, client: Client, job_id: str, *, cursor: str | None = None
    ) -> views.JobView:
        """The job with a page of its items, their files and provenance."""
        job = await self.jobs.get(conn, client, job_id)
        rows, next_cursor = await self.jobs.items(conn, job, limit=ITEMS_PER_PAGE, cursor=cursor)
        assets = await self.assets.get_many(conn, views.asset_ids_of(rows))
        return views.JobView(
            job,
            self.title_of(job),
            views.progress_of(job),
            [views.item_view(item, assets) for item in rows],
            next_cursor,
        )

    async def item(
        self, conn: AsyncConnection, client: Client, job_id: str, item_id: str
    ) -> views.ItemView:
        job = await self.jobs.get(conn, client, job_id)
        item = await self.items.get_item(conn, item_id)
        if item is None or item.job_id != job.id:
            raise NotFound(f"item {item_id} not found", code="ITEM_NOT_FOUND")
        assets = await self.assets.get_many(conn, views.asset_ids_of([item]))
        return views.item_view(item, assets)

    # -- files ----------------------------------------------------------------------------

    async def asset(self, conn: AsyncConnection, client: Client, asset_id: str) -> Asset:
        return await self.assets.get(conn, asset_id, client_id=client.id)

    async def gallery(
        self, conn: AsyncConnection, client: Client, cursor: str | None
    ) -> tuple[list[Asset], str | None]:
        """The client's images, newest first, and the cursor of the next page."""
        before = _read_gallery_cursor(cursor) if cursor else None
        rows = await self.assets.list_images(
            conn, client.id, limit=GALLERY_PER_PAGE + 1, before=before
        )
        page = rows[:GALLERY_PER_PAGE]
        more = len(rows) > GALLERY_PER_PAGE
        return page, _gallery_cursor(page[-1]) if more and page else None

    # -- running work ----------------------------------------------------------------------

    def run_forms(self) -> list[RunForm]:
        """A form for every recipe (but ``model``, which the model forms stand for) and every
        model, available ones first."""
        recipes = [recipe_form(r) for r in self.catalog.recipes() if r["name"] != _MODEL_RECIPE]
        models = sorted(
            (model_form(m) for m in self.catalog.models()),
            key=lambda f: (not f.available, f.target),
        )
        return [*recipes, *models]

    def run_form(self, target: str | None) -> RunForm | None:
        forms = self.run_forms()
        if not target:
            return forms[0] if forms else None
        return next((f for f in forms if f.target == target), None)

    def has_photo_recipe(self) -> bool:
        return self.jobs.recipes.get(PHOTO_RECIPE) is not None

    @staticmethod
    def run_body(form: RunForm, items: list[dict[str, Any]], options: dict[str, Any]) -> JobCreate:
        kind, _, name = form.target.partition(":")
        if kind == "model":
            return JobCreate(model=name, items=items)
        return JobCreate(recipe=name, items=items, options=options)

    @staticmethod
    def photo_body(
        asset_id: str,
        filename: str | None,
        *,
        enhance: bool,
        model_id: str,
        custom_prompt: bool,
        custom_prompt_text: str,
        lora_version: str,
        marketplace: str,
    ) -> JobCreate:
        """Seed 004's upload form as a ``product-photo`` job (``debug`` changes nothing)."""
        options: dict[str, Any] = {"enhance": enhance}
        if model_id.strip().lower() not in _SEED_AUTO:
            options["model"] = model_id.strip()
        if lora_version.strip():
            options["lora_version"] = lora_version.strip()
        if custom_prompt and custom_prompt_text.strip():
            options["custom_prompt_text"] = custom_prompt_text.strip()
        if marketplace.strip():
            options["marketplace"] = marketplace.strip()
        item: dict[str, Any] = {"image": {"asset_id": asset_id}}
        if filename:
            item["filename"] = filename[:200]
        return JobCreate(recipe=PHOTO_RECIPE, items=[item], options=options)
