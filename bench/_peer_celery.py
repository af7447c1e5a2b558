"""The peer: the common Celery design for driving a polling generation provider.

Celery 5 with Redis as broker and result backend, a gevent pool, one task per generation::

    submit ──► request_id ──► self.retry(countdown=POLL)        (the broker holds nothing;
    poll   ──► running?   ──► self.retry(countdown=POLL)         the worker keeps the
    poll   ──► success    ──► download result[0] ──► write file  countdown message in memory)

This is how that design is usually written (a retry per poll, no scheduler of its own), so
the benchmark compares Conveyor with it, not with a tuned Celery. It speaks gen-api's
protocol to the simulator, the same requests Conveyor's shipped spec makes.

Both the ``celery worker`` subprocess and the benchmark import this module. The worker is
configured by ``BENCH_PEER_*`` variables read at import (``PeerConfig.from_environment``);
the benchmark builds its own client app from the same ``PeerConfig`` with ``make_app`` and
sends tasks by name. Bench only: Celery, gevent and redis are the ``bench`` extra.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from celery import Celery, Task
from celery.signals import worker_ready
from requests.adapters import HTTPAdapter

TASK_NAME = "bench.peer.generate"
# gen-api's z-image request, with the defaults Conveyor's shipped spec fills in.
SUBMIT_BODY: dict[str, Any] = {
    "translate_input": True,
    "width": 992,
    "height": 992,
    "num_images": 1,
    "model": "turbo",
    "output_format": "png",
    "num_inference_steps": 8,
    "enable_safety_checker": True,
    "acceleration": "high",
    "enable_prompt_expansion": False,
}
RUNNING = frozenset({"starting", "pending", "processing"})
HTTP_TIMEOUT = 30.0  # seed 001: 30 s per request, as the shipped spec says


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """One peer run: where Redis and the provider are, where results go, how often to poll."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    provider_url: str = "http://127.0.0.1:8100"
    results_dir: str = "."
    poll: float = 5.0
    pool: int = 1000
    api_key: str = "sim-key"
    ready_file: str = ""
    # Every key of one run shares this prefix (a shared Redis), and the queue is the run's own.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def queue(self) -> str:
        return f"bench-peer-{self.run_id}"

    @property
    def key_prefix(self) -> str:
        return f"bench-peer-{self.run_id}:"

    def environment(self) -> dict[str, str]:
        return {
            "BENCH_PEER_REDIS": self.redis_url,
            "BENCH_PEER_PROVIDER": self.provider_url,
            "BENCH_PEER_RESULTS": self.results_dir,
            "BENCH_PEER_POLL": repr(self.poll),
            "BENCH_PEER_POOL": str(self.pool),
            "BENCH_PEER_API_KEY": self.api_key,
            "BENCH_PEER_READY": self.ready_file,
            "BENCH_PEER_RUN": self.run_id,
        }

    @classmethod
    def from_environment(cls) -> PeerConfig:
        env = os.environ
        defaults = cls()
        return cls(
            redis_url=env.get("BENCH_PEER_REDIS", defaults.redis_url),
            provider_url=env.get("BENCH_PEER_PROVIDER", defaults.provider_url),
            results_dir=env.get("BENCH_PEER_RESULTS", defaults.results_dir),
            poll=float(env.get("BENCH_PEER_POLL", defaults.poll)),
            pool=int(env.get("BENCH_PEER_POOL", defaults.pool)),
            api_key=env.get("BENCH_PEER_API_KEY", defaults.api_key),
            ready_file=env.get("BENCH_PEER_READY", ""),
            run_id=env.get("BENCH_PEER_RUN", defaults.run_id),
        )


def make_app(config: PeerConfig) -> Celery:
    """A Celery app on ``config``'s Redis (broker and result backend), the run's own queue."""
    app = Celery("bench_peer", broker=config.redis_url, backend=config.redis_url)
    app.conf.update(
        task_default_queue=config.queue,
        # kombu's Redis pool defaults to 10 connections: under a gevent pool of 1,000 acks
        # then fail ("Couldn't ack ... Too many connections", celery#1350), the consumer
        # reconnects and unacked tasks run twice. A user raises it to the pool size.
        broker_transport_options={
            "global_keyprefix": config.key_prefix,
            "max_connections": config.pool,
        },
        redis_max_connections=config.pool,
        # Celery keeps one result backend per thread, i.e. per greenlet under gevent: every
        # retry would subscribe a new Redis connection that is never closed (celery#6819;
        # 1.4 GiB RSS at 2,000 generations here). One shared backend, as users configure it.
        result_backend_thread_safe=True,
        broker_connection_retry_on_startup=True,
        # Results are kept briefly: the run deletes its own, this is the fallback.
        result_expires=600,
        worker_hijack_root_logger=False,
    )
    return app


CONFIG = PeerConfig.from_environment()
app = make_app(CONFIG)
_API = f"{CONFIG.provider_url}/genapi/api/v1"
_AUTH = {"Authorization": f"Bearer {CONFIG.api_key}"}
# One keep-alive pool shared by every greenlet (the worker is patched by gevent at start).
_session = requests.Session()
_session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=CONFIG.pool))


@worker_ready.connect
def _say_ready(**_: Any) -> None:
    if CONFIG.ready_file:
        Path(CONFIG.ready_file).write_text(str(os.getpid()))


@app.task(bind=True, name=TASK_NAME, max_retries=None)
def generate(self: Task, generation: int, prompt: str, request_id: int | None = None) -> str:
    """Submit once, then poll every ``poll`` seconds by retrying; download, write, done."""
    if request_id is None:
        answer = _session.post(
            f"{_API}/networks/z-image",
            json={**SUBMIT_BODY, "prompt": prompt},
            headers=_AUTH,
            timeout=HTTP_TIMEOUT,
        )
        answer.raise_for_status()
        request_id = int(answer.json()["request_id"])
        state = {"generation": generation, "prompt": prompt, "request_id": request_id}
        raise self.retry(kwargs=state, countdown=CONFIG.poll)
    answer = _session.get(f"{_API}/request/get/{request_id}", headers=_AUTH, timeout=HTTP_TIMEOUT)
    answer.raise_for_status()
    body = answer.json()
    if body["status"] in RUNNING:
        state = {"generation": generation, "prompt": prompt, "request_id": request_id}
        raise self.retry(kwargs=state, countdown=CONFIG.poll)
    if body["status"] != "success":
        raise RuntimeError(f"generation {generation} failed: {body.get('error')}")
    image = _session.get(body["result"][0], timeout=HTTP_TIMEOUT)
    image.raise_for_status()
    path = Path(CONFIG.results_dir) / f"{request_id}.png"
    path.write_bytes(image.content)
    return str(path)
