"""What running items needs, built once per worker process by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.assets.links import AssetLinks
from conveyor.assets.service import AssetService
from conveyor.core.clock import Clock
from conveyor.core.db import Database
from conveyor.execution.callbacks import StepCallbacks
from conveyor.execution.cancellation import CancellationWatch
from conveyor.execution.files import Downloader
from conveyor.execution.polling import PollScheduler
from conveyor.jobs.items import ItemService
from conveyor.providers.registry import ModelRegistry
from conveyor.recipes.base import RecipeRegistry


@dataclass
class EngineDeps:
    db: Database
    clock: Clock
    items: ItemService
    recipes: RecipeRegistry
    models: ModelRegistry
    assets: AssetService
    # Client-given input URLs, and provider results: two pools (see ``runtime``).
    downloader: Downloader
    results: Downloader
    watch: CancellationWatch
    max_input_bytes: int = 25 * 1024 * 1024
    # How remote providers reach stored inputs when storage can't presign (public_url set).
    asset_links: AssetLinks | None = None
    # Where items wait on pollable providers; None: they poll in their own coroutines.
    polls: PollScheduler | None = None
    # Per-step callback URLs and the pauses a callback ends; None: polling alone.
    callbacks: StepCallbacks | None = None
