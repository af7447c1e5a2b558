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
from conveyor.compat.boxes.generation import GenerationPlanner
from conveyor.compat.boxes.links import FileLinks
from conveyor.compat.boxes.service import BoxService
from conveyor.compat.boxes.settling import BoxSettler
from conveyor.compat.descriptions.service import DescriptionsService
from conveyor.compat.media.service import MediaService
from conveyor.compat.photos.service import SOURCES as PHOTO_SOURCES
from conveyor.compat.photos.service import PhotosService
from conveyor.config import Settings
from conveyor.core.clock import Clock, SystemClock
from conveyor.core.db import Database
from conveyor.core.notify import PostgresListener, Signal
from conveyor.errors import ConfigurationError
from conveyor.execution.callbacks import CallbackReceiver, StepCallbacks
from conveyor.execution.cancellation import CancellationWatch
from conveyor.execution.engine import EngineDeps
from conveyor.execution.polling import PollScheduler
from conveyor.execution.tasks import register_execution_tasks
from conveyor.execution.wakeups import StepWakeups
from conveyor.execution.webhooks import WebhookSender
from conveyor.jobs.events import EVENTS_CHANNEL, EventBus
from conveyor.jobs.items import ItemService
from conveyor.jobs.models import JobRow
from conveyor.jobs.retention import RetentionSweeper
from conveyor.jobs.schemas import ErrorReason, JobOut
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
from conveyor.system.service import OperatorService
from conveyor.web.service import ConsoleService
from conveyor.web.session import SessionCodec
from conveyor.web.thumbnails import Thumbnails

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
    boxes: BoxService
    box_settler: BoxSettler
    media: MediaService
    photos: PhotosService
    catalog: CatalogService
    http: aiohttp.ClientSession
    # Client-given input URLs; provider results; webhooks: each over a pool of its own.
    fetcher: SafeFetcher
    result_fetcher: SafeFetcher
    webhook_fetcher: SafeFetcher
    cpu: EnginePool
    watch: CancellationWatch
    wakeups: StepWakeups
    callbacks: CallbackReceiver
    secret_key: str
    operator: OperatorService
    console: ConsoleService
    sessions: SessionCodec
    thumbnails: Thumbnails
    # Signs links to stored files; the engine hands them to providers only when
    # CONVEYOR_PUBLIC_URL says how providers reach this server.
    asset_links: AssetLinks
    listener: PostgresListener | None = None
    worker: Worker | None = None
    retention: RetentionSweeper | None = None
    simulator: RunningSimulator | None = None
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    def engine_deps(self, polls: PollScheduler | None = None) -> EngineDeps:
        return EngineDeps(
            db=self.db,
            clock=self.clock,
            items=self.items,
            recipes=self.recipes,
            models=self.models,
            assets=self.assets,
            downloader=self.fetcher,
            results=self.result_fetcher,
            watch=self.watch,
            max_input_bytes=self.settings.fetch_max_bytes,
            polls=polls,
            asset_links=self.asset_links if self.settings.public_url else None,
            callbacks=StepCallbacks(
                self.models,
                self.wakeups,
                self.clock,
                public_url=self.settings.public_url,
                secret=self.secret_key,
            )
            if self.settings.public_url
            else None,
        )

    def worker_config(self) -> WorkerConfig:
        s = self.settings
        return WorkerConfig(
            concurrency=s.worker_concurrency,
            claim_batch=s.claim_batch_size,
            fair_reserve=s.worker_fair_reserve,
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
        self.worker = worker = Worker(
            self.db, self.queue, registry, self.worker_config(), wakeup=self.wakeup
        )
        polls = PollScheduler(
            self.clock,
            self.watch,
            resume=worker.resume,
            is_parked=worker.is_parked,
            wakeups=self.wakeups if self.settings.public_url else None,
        )
        register_execution_tasks(
            registry,
            self.engine_deps(polls),
            WebhookSender(
                self.db,
                self.clock,
                self.items,
                self.webhook_fetcher,
                secret=self.secret_key,
                render_job=_render_job,
            ),
            item_timeout=self.settings.item_timeout,
        )
        self._spawn(worker.run(), "worker")
        self._spawn(polls.run(), "poll-scheduler")
        self._spawn(self.watch.run(), "cancellation-watch")
        self._spawn(self.wakeups.follow(self.events), "step-wakeups")
        self._spawn(self.box_settler.run(), "box-settling")
        self.retention = RetentionSweeper(
            self.db,
            self.queue,
            self.assets,
            self.clock,
            days=self.settings.retention_days,
            # Seed 004 promises its history for 30 days, whatever the global window.
            days_by_source=dict.fromkeys(PHOTO_SOURCES, self.settings.photos_retention_days),
        )
        self._spawn(self.retention.run(holder=self.worker.id), "retention")
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
        await self.box_settler.close()
        if self.simulator is not None:
            await self.simulator.close()
        for fetcher in (self.fetcher, self.webhook_fetcher):
            await fetcher.session.close()
        await self.http.close()
        await self.storage.close()
        self.cpu.shutdown()
        await self.db.dispose()


def _outbound_session(pool_size: int) -> aiohttp.ClientSession:
    """An outbound HTTP pool. No cookie jar: what one server sets must never reach another;
    no proxies taken from the environment."""
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        connector=aiohttp.TCPConnector(limit=pool_size, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
    )


def _tune_garbage_collector() -> None:
    """A worker holds thousands of waiting tasks: hundreds of thousands of live objects.
    Python's default thresholds then run a full collection every few seconds, each long
    enough to delay polls by a second (bench/RESULTS.md). Objects that exist at start-up
    are frozen out of collection and collections run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)


def _render_job(job: JobRow, reasons: list[ErrorReason]) -> dict[str, object]:
    return JobOut.from_row(job, reasons).model_dump(mode="json")


def _file_links(settings: Settings, storage: StorageBackend, signer: AssetLinks) -> FileLinks:
    """How clients download box files: the public bucket URL when the operator set one."""
    if not settings.s3_public_url:
        return FileLinks(storage, signer)
    from conveyor.storage.s3 import S3Storage

    if not isinstance(storage, S3Storage):
        raise ConfigurationError("CONVEYOR_S3_PUBLIC_URL needs CONVEYOR_STORAGE=s3")
    return FileLinks(
        storage, signer, public_base=settings.s3_public_url, object_key=storage.object_key
    )


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
    # Three pools, so one kind of traffic can't starve another: provider calls (and their
    # result downloads), client-given input URLs, webhooks.
    http = _outbound_session(settings.http_pool_size)
    policy = UrlPolicy.from_settings(settings)
    fetcher = SafeFetcher(_outbound_session(settings.fetch_pool_size), policy)
    result_fetcher = SafeFetcher(http, policy)
    webhook_fetcher = SafeFetcher(_outbound_session(settings.webhook_pool_size), policy)
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
        urls=fetcher,
        url_policy=policy,
        webhook_fetcher=webhook_fetcher,
    )
    items = ItemService(clock, queue, events)
    secret_key = _secret_key(settings)
    asset_links = AssetLinks(secret_key, settings.public_url, clock)
    # One way to hand out file URLs: a box's file_url and a job result's url agree.
    file_links = _file_links(settings, storage, asset_links)
    streams = JobStreams(db, clock, events, assets, file_links)
    boxes = BoxService(jobs, assets, GenerationPlanner(models), file_links, clock)
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
        boxes=boxes,
        box_settler=BoxSettler(db, boxes, assets, clock),
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
        photos=PhotosService(jobs, items, assets, catalog, clock, settings),
        catalog=catalog,
        http=http,
        fetcher=fetcher,
        result_fetcher=result_fetcher,
        webhook_fetcher=webhook_fetcher,
        cpu=cpu,
        watch=CancellationWatch(db, events, items),
        wakeups=StepWakeups(clock),
        callbacks=CallbackReceiver(db, items, models, events, clock, secret=secret_key),
        secret_key=secret_key,
        operator=OperatorService(queue, stale_after=settings.heartbeat_timeout),
        console=ConsoleService(jobs, items, assets, catalog),
        sessions=SessionCodec(secret_key, clock),
        thumbnails=Thumbnails(storage),
        asset_links=asset_links,
        listener=listener,
        simulator=simulator,
    )
    await clients.ensure_local_client()
    runtime._spawn(catalog.follow_changes(), "provider-specs")
    return runtime
