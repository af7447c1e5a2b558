"""The composition root: builds every service of one process from the settings.

``conveyor serve`` opens a runtime with workers embedded; ``serve --no-workers`` without;
``conveyor worker`` opens one just to run workers. Nothing below this module knows how the
pieces are wired together.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from conveyor.assets.links import AssetLinks
from conveyor.assets.service import AssetService
from conveyor.catalog.service import CatalogService
from conveyor.clients.service import ClientService
from conveyor.compat.descriptions.service import DescriptionsService
from conveyor.compat.media.service import MediaService
from conveyor.config import Settings
from conveyor.core.clock import Clock, SystemClock
from conveyor.core.db import Database
from conveyor.core.notify import PostgresListener, Signal
from conveyor.execution.cancellation import CancellationWatch
from conveyor.execution.engine import EngineDeps
from conveyor.execution.tasks import register_execution_tasks
from conveyor.execution.webhooks import WebhookSender
from conveyor.jobs.events import EVENTS_CHANNEL, EventBus
from conveyor.jobs.items import ItemService
from conveyor.jobs.models import JobRow
from conveyor.jobs.retention import RetentionSweeper
from conveyor.jobs.schemas import JobOut
from conveyor.jobs.service import JobService
from conveyor.jobs.streams import JobStreams
from conveyor.net.fetcher import SafeFetcher
from conveyor.net.policy import UrlPolicy
from conveyor.providers.base import ModelAdapter
from conveyor.providers.catalog_setup import build_model_registry, cpu_limits, http_overrides
from conveyor.providers.http import build_http_adapters
from conveyor.providers.local.pool import EnginePool
from conveyor.providers.registry import ModelRegistry
from conveyor.queue import QueueRepository, RetryPolicy, TaskRegistry, Worker, WorkerConfig
from conveyor.queue.repository import NOTIFY_CHANNEL
from conveyor.recipes.base import RecipeRegistry
from conveyor.recipes.catalog import default_recipes, word_media_recipe
from conveyor.storage import StorageBackend, create_storage

if TYPE_CHECKING:
    from conveyor.sim import RunningSimulator

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    db: Database
    storage: StorageBackend
    wakeup: Signal
    queue: QueueRepository
    events: EventBus
    clients: ClientService
    assets: AssetService
    recipes: RecipeRegistry
    models: ModelRegistry
    jobs: JobService
    items: ItemService
    streams: JobStreams
    descriptions: DescriptionsService
    media: MediaService
    catalog: CatalogService
    http: aiohttp.ClientSession
    fetcher: SafeFetcher
    cpu: EnginePool
    watch: CancellationWatch
    secret_key: str
    asset_links: AssetLinks | None = None
    listener: PostgresListener | None = None
    worker: Worker | None = None
    simulator: RunningSimulator | None = None
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    def engine_deps(self) -> EngineDeps:
        return EngineDeps(
            db=self.db,
            clock=self.clock,
            items=self.items,
            recipes=self.recipes,
            models=self.models,
            assets=self.assets,
            downloader=self.fetcher,
            watch=self.watch,
            max_input_bytes=self.settings.fetch_max_bytes,
            asset_links=self.asset_links,
        )

    def worker_config(self) -> WorkerConfig:
        s = self.settings
        return WorkerConfig(
            concurrency=s.worker_concurrency,
            claim_batch=s.claim_batch_size,
            poll_interval=s.queue_poll_interval,
            heartbeat_interval=s.heartbeat_interval,
            stale_after=s.heartbeat_timeout,
            sweep_interval=s.sweep_interval,
            shutdown_grace=s.shutdown_grace,
            retry=RetryPolicy(base_delay=s.retry_base_delay, max_delay=s.retry_max_delay),
        )

    async def start_workers(self) -> Worker:
        """Run a worker in this process (embedded in ``serve``, or ``conveyor worker``)."""
        _tune_garbage_collector()
        registry = TaskRegistry()
        register_execution_tasks(
            registry,
            self.engine_deps(),
            WebhookSender(
                self.db,
                self.clock,
                self.items,
                self.fetcher,
                secret=self.secret_key,
                render_job=_render_job,
            ),
            item_timeout=self.settings.item_timeout,
        )
        self.worker = Worker(
            self.db, self.queue, registry, self.worker_config(), wakeup=self.wakeup
        )
        self._spawn(self.worker.run(), "worker")
        self._spawn(self.watch.run(), "cancellation-watch")
        sweeper = RetentionSweeper(
            self.db, self.queue, self.assets, self.clock, days=self.settings.retention_days
        )
        self._spawn(sweeper.run(holder=self.worker.id), "retention")
        await self.worker.started.wait()
        return self.worker

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._background.append(asyncio.create_task(coro, name=name))

    async def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        for task in self._background:
            if task.get_name() != "worker":
                task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.listener is not None:
            await self.listener.stop()
        if self.simulator is not None:
            await self.simulator.close()
        await self.http.close()
        await self.storage.close()
        self.cpu.shutdown()
        await self.db.dispose()


def _tune_garbage_collector() -> None:
    """A worker holds thousands of waiting tasks: hundreds of thousands of live objects.
    Python's default thresholds then run a full collection every few seconds, each long
    enough to delay polls by a second (bench/RESULTS.md). Objects that exist at start-up
    are frozen out of collection and collections run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)


def _render_job(job: JobRow) -> dict[str, object]:
    return JobOut.from_row(job).model_dump(mode="json")


def _secret_key(settings: Settings) -> str:
    """The configured secret, or in dev a random one kept in the data directory."""
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / "secret-key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    path.write_text(secret)
    path.chmod(0o600)
    log.warning("CONVEYOR_SECRET_KEY not set; using a generated secret in %s", path)
    return secret


async def _ensure_simulator(settings: Settings, clock: Clock) -> RunningSimulator | None:
    """In simulate mode, start the provider simulator here unless one already answers."""
    url = URL(settings.simulator_url)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url / "_sim", timeout=aiohttp.ClientTimeout(total=2)) as answer,
        ):
            if answer.status == 200:
                log.info("using the provider simulator at %s", url)
                return None
    except (aiohttp.ClientError, TimeoutError):
        pass
    # Imported here: only a process that starts the simulator pays for it (~50 MB).
    from conveyor.sim import start_simulator

    simulator = await start_simulator(
        host=url.host or "127.0.0.1", port=url.port or 8100, clock=clock
    )
    log.warning("SIMULATED providers: started the simulator at %s", simulator.base_url)
    return simulator


async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    extra_adapters: Iterable[ModelAdapter] = (),
) -> Runtime:
    clock = clock or SystemClock()
    simulator = await _ensure_simulator(settings, clock) if settings.simulate else None
    db = Database(settings.resolved_database_url, pool_size=settings.database_pool_size)
    wakeup = Signal()
    queue = QueueRepository(
        db.dialect, clock, default_max_attempts=settings.task_max_attempts, wakeup=wakeup.notify
    )
    events = EventBus()
    storage = create_storage(settings)
    # One session for providers and the SSRF-checked fetcher. No cookie jar: what one server
    # sets must never reach another; no proxies taken from the environment.
    http = aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        connector=aiohttp.TCPConnector(limit=settings.http_pool_size, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
    )
    fetcher = SafeFetcher(http, UrlPolicy.from_settings(settings))
    cpu = EnginePool(settings.process_pool_size, limits=cpu_limits(settings))
    models = build_model_registry(settings, http=http, cpu=cpu, clock=clock)
    for adapter in extra_adapters:
        models.add(adapter)
    for adapter in models.all():
        found = adapter.availability()
        if adapter.model_id.startswith("local/") and not found.available:
            # Say at start-up what a skipped install step costs, and how to fix it.
            log.warning("%s unavailable: %s", adapter.model_id, found.reason)
    recipes = RecipeRegistry(default_recipes(settings))
    overrides = http_overrides(settings)
    catalog = CatalogService(
        db,
        clock,
        models,
        recipes,
        build_adapters=lambda specs: list(build_http_adapters(specs, http, overrides, clock=clock)),
    )
    await catalog.load_stored()
    clients = ClientService(db, clock, open_allowed=settings.open_mode_allowed)
    assets = AssetService(storage, clock, max_upload_bytes=settings.max_upload_bytes)
    jobs = JobService(
        clock,
        queue,
        recipes,
        models,
        assets,
        events,
        max_items=settings.max_items_per_job,
        simulated=settings.simulate,
    )
    items = ItemService(clock, queue, events)
    streams = JobStreams(db, clock, events, assets)
    secret_key = _secret_key(settings)
    listener = None
    if db.dialect == "postgresql":
        listener = PostgresListener(settings.resolved_database_url)
        listener.subscribe(NOTIFY_CHANNEL, lambda _payload: wakeup.notify())
        listener.subscribe(EVENTS_CHANNEL, events.on_notification)
        await listener.start()
    runtime = Runtime(
        settings=settings,
        clock=clock,
        db=db,
        storage=storage,
        wakeup=wakeup,
        queue=queue,
        events=events,
        clients=clients,
        assets=assets,
        recipes=recipes,
        models=models,
        jobs=jobs,
        items=items,
        streams=streams,
        descriptions=DescriptionsService(jobs, streams, clients, clock, settings),
        media=MediaService(
            jobs,
            streams,
            assets,
            models,
            word_media_recipe(recipes),
            clock,
            settings,
            secret=secret_key,
        ),
        catalog=catalog,
        http=http,
        fetcher=fetcher,
        cpu=cpu,
        watch=CancellationWatch(db, events, items),
        secret_key=secret_key,
        asset_links=AssetLinks(secret_key, settings.public_url, clock)
        if settings.public_url
        else None,
        listener=listener,
        simulator=simulator,
    )
    await clients.ensure_local_client()
    runtime._spawn(catalog.follow_changes(), "provider-specs")
    return runtime
