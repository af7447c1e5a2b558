"""``conveyor try image|video``: seed 003's ``test_generation`` and ``test_video_generation``.

Both go through a running server's boxes API, as a client would: into a box (``--box``,
created when missing), ``POST /api/boxes/{id}/generate/`` (for a video, the ``--image``
uploaded first and given as ``parent_asset``), the asset followed with a progress bar until
it is COMPLETED or FAILED, and its file downloaded from ``file_url`` into ``--out``.
"""

from __future__ import annotations

import mimetypes
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from conveyor.cli.app import (
    KeyOption,
    UrlOption,
    api_client,
    app,
    call,
    console,
    err,
    fail,
    parse_options,
)
from conveyor.client import Conveyor

try_app = typer.Typer(
    help="Try a model through a running server: generate into a box, save the file.",
    no_args_is_help=True,
)
app.add_typer(try_app, name="try")

DEFAULT_BOX = "conveyor try"
_FINAL = ("COMPLETED", "FAILED")

Prompt = Annotated[str, typer.Option("--prompt", "-p", help="What to make")]
BoxName = Annotated[str, typer.Option("--box", help="The box to put it in (made if missing)")]
OutDir = Annotated[Path, typer.Option("--out", help="Folder to save the file in")]
ConfigOption = Annotated[
    list[str] | None,
    typer.Option("--config", "-c", help="A model setting NAME=VALUE (aspect_ratio=16:9 …)"),
]
Timeout = Annotated[float, typer.Option(help="Give up waiting after this many seconds")]


@try_app.command("image")
def try_image(
    model: Annotated[str, typer.Argument(help="An image model, e.g. kie/seedream-4.5")],
    prompt: Prompt,
    box: BoxName = DEFAULT_BOX,
    config: ConfigOption = None,
    out: OutDir = Path("."),
    timeout: Timeout = 900.0,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Generate an image into a box and save it."""
    with api_client(url, key) as api:
        box_id = _box(api, box)
        body = {"model": model, "prompt": prompt, "config": parse_options(config or [])}
        _generate_and_save(api, box_id, body, out, timeout)


@try_app.command("video")
def try_video(
    model: Annotated[str, typer.Argument(help="A video model, e.g. kie/seedance-1.5-pro")],
    image: Annotated[
        Path, typer.Option("--image", exists=True, dir_okay=False, help="The first frame")
    ],
    prompt: Prompt,
    box: BoxName = DEFAULT_BOX,
    config: ConfigOption = None,
    out: OutDir = Path("."),
    timeout: Timeout = 900.0,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Upload an image and animate it with a video model (img2vid); save the video."""
    with api_client(url, key) as api:
        box_id = _box(api, box)
        with image.open("rb") as handle:
            parent = call(
                api.request_json,
                "POST",
                f"/api/boxes/{box_id}/upload/",
                files={"file": (image.name, handle)},
            )
        err.print(f"uploaded {image.name} as asset {parent['id']} ({parent['mime_type']})")
        body = {
            "model": model,
            "prompt": prompt,
            "parent_asset": parent["id"],
            "config": parse_options(config or []),
        }
        _generate_and_save(api, box_id, body, out, timeout)


def _box(api: Conveyor, name: str) -> str:
    """The id of the caller's box called ``name``, creating it if there is none."""
    offset = 0
    while True:
        page = call(api.request_json, "GET", "/api/boxes/", params={"limit": 500, "offset": offset})
        for found in page:
            if found["name"] == name:
                return str(found["id"])
        if len(page) < 500:
            break
        offset += len(page)
    created = call(api.request_json, "POST", "/api/boxes/", json={"name": name})
    err.print(f"created box {name!r} ({created['id']})")
    return str(created["id"])


def _generate_and_save(
    api: Conveyor, box_id: str, body: dict[str, Any], out: Path, timeout: float
) -> None:
    asset = call(api.request_json, "POST", f"/api/boxes/{box_id}/generate/", json=body)
    err.print(
        f"asset {asset['id']} ({asset['source_type']}) is {asset['status']}; job {asset['job_id']}"
    )
    final = _follow(api, asset, timeout)
    if final["status"] == "FAILED":
        raise fail(f"generation failed: {final['error_message']}")
    path = _save(final, out)
    console.print(
        f"{final['status']}: {final['mime_type']}, {final['size']} bytes "
        f"(provider task {final['external_task_id']})"
    )
    console.print(f"saved: {path}")


def _follow(api: Conveyor, asset: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll the asset once a second, showing its status, until it is final."""
    deadline = time.monotonic() + timeout
    current = asset
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        task = bar.add_task(current["status"], total=None)
        while current["status"] not in _FINAL:
            if time.monotonic() > deadline:
                raise fail(
                    f"still {current['status']} after {timeout:g} s; the job goes on: "
                    f"conveyor jobs show {current['job_id']}"
                )
            time.sleep(1.0)
            current = call(api.request_json, "GET", f"/api/assets/{current['id']}/")
            bar.update(task, description=current["status"])
        bar.update(task, total=1, completed=1, description=current["status"])
    return current


def _save(asset: dict[str, Any], out: Path) -> Path:
    extension = mimetypes.guess_extension(asset["mime_type"] or "") or ".bin"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{asset['id']}{extension}"
    try:
        with httpx.stream("GET", asset["file_url"], timeout=300) as answer:
            if answer.status_code != 200:
                raise fail(f"downloading {asset['file_url']} answered {answer.status_code}")
            with target.open("wb") as handle:
                for chunk in answer.iter_bytes():
                    handle.write(chunk)
    except httpx.HTTPError as exc:
        raise fail(f"cannot download the file: {exc}") from exc
    return target
