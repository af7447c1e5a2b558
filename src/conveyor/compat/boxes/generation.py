"""Turning ``POST /api/boxes/{id}/generate/`` into the inputs of one model call, or refusing it.

The seed builds a context of ``prompt``, ``image_url`` and ``config`` and substitutes it into
the model's request schema. Here the model's inputs are ``prompt``, the parent's file (under
the model's image input, see ``image_input``) and ``config`` as further inputs. Everything a
client can get wrong is refused here, before any job exists or any provider is called:

* an unknown model, one that is switched off or has no key (422 ``UNKNOWN_MODEL``,
  ``MODEL_UNAVAILABLE``), or one that makes no file (422 ``NOT_A_MEDIA_MODEL``);
* a parent that is not finished (409 ``PARENT_NOT_READY``) or not an image (422
  ``PARENT_NOT_IMAGE``), or a model that takes no input image (422 ``PARENT_NOT_ACCEPTED``:
  img2vid needs a video model that takes one);
* ``config`` (a number given for an input the model declares as text becomes text) naming
  ``prompt`` or the image input, or holding a file (``{"url"}``,
  ``{"asset_id"}``: files come in as the parent only) (422 ``CONFIG_CONFLICT``);
* for a declarative HTTP model, the dry run of its submit request: a placeholder the call
  never gets (422 ``MISSING_VARIABLES``, ``PARENT_REQUIRED`` when it is the image) or an
  input of the wrong type (422).

A parent given to a video model makes the asset ``IMG2VID``; to an image model that takes an
image (an edit, a new background) ``GENERATED`` with the parent kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from conveyor.compat.boxes.models import COMPLETED, GENERATED, IMG2VID
from conveyor.compat.boxes.schemas import GenerateRequest
from conveyor.content.sniff import is_image_mime
from conveyor.errors import Conflict, ValidationFailed
from conveyor.providers.base import ModelAdapter
from conveyor.providers.http import HttpModelAdapter
from conveyor.providers.registry import ModelRegistry
from conveyor.providers.template import TemplateVariablesMissing
from conveyor.recipes.base import asset_file

__all__ = ["GenerationPlan", "GenerationPlanner", "ParentFile", "image_input"]

MEDIA_KINDS: Final = frozenset({"image", "video", "audio", "background"})
PROMPT: Final = "prompt"
# Input names that hold an image, for models whose spec types it loosely (a seed AIModel row
# puts "{{image_url}}" inside a list, where it is typed ``any``).
_IMAGE_NAMES: Final = re.compile(
    r"^(image|images|photo|input_image|first_frame)$|(_url|_urls|_image|_images)$"
)
# What the dry run puts where the parent's URL will be: never sent anywhere.
_DRY_RUN_URL: Final = "https://conveyor.invalid/parent-asset"


@dataclass(frozen=True, slots=True)
class ParentFile:
    """The parent asset as far as a generation needs it."""

    id: str
    status: str
    file_asset_id: str | None
    mime_type: str | None


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    model_id: str
    source_type: str
    inputs: dict[str, Any]
    parent_id: str | None


def image_input(adapter: ModelAdapter) -> str | None:
    """The input a parent image goes to: the first declared as a file, else the first whose
    name says it holds an image (``image_url``, ``input_image``, …); None if there is none."""
    declared = adapter.catalogue_entry().get("spec", {}).get("inputs") or []
    names = [str(field.get("name")) for field in declared if isinstance(field, dict)]
    types = {str(field.get("name")): field.get("type") for field in declared}
    for name in names:
        if types.get(name) in ("file", "files"):
            return name
    return next((name for name in names if _IMAGE_NAMES.search(name)), None)


def _as_declared(adapter: ModelAdapter, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with numbers given for inputs declared as text turned into text: Kie wants
    ``"duration": "8"``, and a client (or ``--config duration=8``) sends a number."""
    declared = adapter.catalogue_entry().get("spec", {}).get("inputs") or []
    text = {str(field.get("name")) for field in declared if field.get("type") == "string"}
    return {
        name: str(value)
        if name in text and isinstance(value, int | float) and not isinstance(value, bool)
        else value
        for name, value in config.items()
    }


class GenerationPlanner:
    """Checks a generation request against the catalogue and builds the model's inputs."""

    def __init__(self, models: ModelRegistry) -> None:
        self.models = models

    def plan(self, request: GenerateRequest, parent: ParentFile | None) -> GenerationPlan:
        adapter = self._media_model(request.model)
        target = None
        source_type = GENERATED
        if parent is not None:
            target = self._parent_input(adapter, parent)
            source_type = IMG2VID if adapter.kind == "video" else GENERATED
        reserved = {PROMPT, target} if target else {PROMPT}
        clash = sorted(reserved & set(request.config))
        files = sorted(name for name, value in request.config.items() if asset_file(value))
        if clash or files:
            raise ValidationFailed(
                f"config may not set {', '.join(repr(c) for c in [*clash, *files])}: give the "
                "prompt as 'prompt' and the input image as 'parent_asset' (config holds the "
                "model's other settings)",
                code="CONFIG_CONFLICT",
            )
        inputs: dict[str, Any] = {**_as_declared(adapter, request.config), PROMPT: request.prompt}
        if parent is not None and target is not None:
            inputs[target] = {"asset_id": parent.file_asset_id}
        self._dry_run(adapter, inputs, target, image_expected=image_input(adapter))
        return GenerationPlan(adapter.model_id, source_type, inputs, parent.id if parent else None)

    def _media_model(self, model_id: str) -> ModelAdapter:
        adapter = self.models.get(model_id)
        if adapter is None:
            raise ValidationFailed(
                f"unknown model {model_id!r}; see GET /v1/models", code="UNKNOWN_MODEL"
            )
        if adapter.kind not in MEDIA_KINDS:
            raise ValidationFailed(
                f"model {model_id} makes {adapter.kind}, not a file; a box holds images, "
                "videos and audio: use a model of kind image, video, audio or background",
                code="NOT_A_MEDIA_MODEL",
            )
        found = adapter.availability()
        if not found.available:
            hint = f" ({found.enable_with})" if found.enable_with else ""
            raise ValidationFailed(
                f"model {model_id} is not available: {found.reason}{hint}",
                code="MODEL_UNAVAILABLE",
            )
        return adapter

    def _parent_input(self, adapter: ModelAdapter, parent: ParentFile) -> str:
        if parent.status != COMPLETED or parent.file_asset_id is None:
            raise Conflict(
                f"parent asset {parent.id} is {parent.status}: only a COMPLETED asset can be "
                "a parent",
                code="PARENT_NOT_READY",
            )
        if not is_image_mime(parent.mime_type):
            raise ValidationFailed(
                f"parent asset {parent.id} is {parent.mime_type}, not an image: img2vid and "
                "image edits start from a picture",
                code="PARENT_NOT_IMAGE",
            )
        target = image_input(adapter)
        if target is None:
            what = (
                "a video model that takes no input image"
                if adapter.kind == "video"
                else f"not a video model ({adapter.kind}) and takes no input image"
            )
            raise ValidationFailed(
                f"model {adapter.model_id} is {what}: a parent_asset needs a model that "
                "animates or edits an image (for img2vid: a video model such as "
                "kie/seedance-1.5-pro)",
                code="PARENT_NOT_ACCEPTED",
            )
        return target

    def _dry_run(
        self,
        adapter: ModelAdapter,
        inputs: dict[str, Any],
        target: str | None,
        *,
        image_expected: str | None,
    ) -> None:
        """Render the submit request as a real call would (HTTP models), sending nothing."""
        if not isinstance(adapter, HttpModelAdapter):
            return
        rendered = {
            name: _DRY_RUN_URL if name == target else value for name, value in inputs.items()
        }
        try:
            adapter.prepare_submit(rendered, idempotency_key="dry-run")
        except TemplateVariablesMissing as exc:
            if image_expected is not None and image_expected in exc.missing:
                raise ValidationFailed(
                    f"model {adapter.model_id} needs an input image ({image_expected!r}): give "
                    "parent_asset, the id of a COMPLETED image asset",
                    code="PARENT_REQUIRED",
                    details={"missing": exc.missing},
                ) from None
            raise ValidationFailed(
                f"model {adapter.model_id}'s request uses {', '.join(exc.missing)}, which this "
                "generation does not give: add them to config",
                code="MISSING_VARIABLES",
                details={"missing": exc.missing},
            ) from None
