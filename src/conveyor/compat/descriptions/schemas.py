"""What the seed-000 API accepts and answers, checked and shaped here.

The request body is read by hand rather than by a pydantic model, for two reasons: the
signature is computed over ``lots`` exactly as the client sent them (so the raw JSON value
must be kept), and every mistake must come back as the seed's kind of answer, a 400 that
names the lot and the field, not a framework's 422. ``parse_*`` functions raise
``BadRequest`` subclasses; the ``*Out`` models are the answers (and their OpenAPI schemas).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from conveyor.content.languages import normalize_languages
from conveyor.errors import BadRequest
from conveyor.jobs.models import JOB_PROCESSING, ItemRow, JobRow
from conveyor.recipes.vehicle_damage import MAX_ADDITIONAL_INFO, MAX_IMAGES, MAX_LOT_ID, MAX_URL

SUPPORTED_VERSIONS = ("1.0.0",)
DEFAULT_VERSION = "1.0.0"
MAX_LANGUAGES = 100
# Problems listed in one 400 answer; the count says how many there were in all.
MAX_PROBLEMS = 50

JobStatus = Literal["pending", "processing", "translating", "completed", "failed", "cancelled"]
# The vehicle-damage recipe's stage the seed shows as a status of its own.
TRANSLATING = "translating"


def seed_status(job: JobRow) -> JobStatus:
    """The job's status as the seed names it: a processing job in the recipe's
    ``translating`` stage is ``translating``."""
    if job.status == JOB_PROCESSING and job.stage == TRANSLATING:
        return "translating"
    return cast(JobStatus, job.status)


def stage_filter(status: str | None) -> tuple[str | None, str | None, str | None]:
    """A seed status filter as (native status, required stage, excluded stage)."""
    if status == TRANSLATING:
        return JOB_PROCESSING, TRANSLATING, None
    if status == JOB_PROCESSING:
        return JOB_PROCESSING, None, TRANSLATING
    return status, None, None


class InvalidRequest(BadRequest):
    code = "INVALID_REQUEST"


@dataclass(frozen=True, slots=True)
class DescriptionRequest:
    """A checked ``POST /api/v1/generate-descriptions`` body."""

    version: str
    languages: list[str]
    lots: list[dict[str, Any]]


def read_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}", code="INVALID_JSON") from exc
    if not isinstance(body, dict):
        raise InvalidRequest(
            "the body must be a JSON object with signature, version, languages, lots"
        )
    return body


def signed_lots(body: dict[str, Any]) -> list[Any]:
    """The ``lots`` value the signature covers (checked for shape before the signature)."""
    lots = body.get("lots")
    if not isinstance(lots, list) or not lots:
        raise InvalidRequest("lots must be a non-empty list of lots", code="INVALID_LOTS")
    return lots


def parse_request(body: dict[str, Any], lots: list[Any]) -> DescriptionRequest:
    return DescriptionRequest(parse_version(body), parse_languages(body), parse_lots(lots))


def parse_version(body: dict[str, Any]) -> str:
    version = body.get("version", DEFAULT_VERSION)
    if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
        raise InvalidRequest(
            f"unsupported version {version!r}; this server speaks {', '.join(SUPPORTED_VERSIONS)}",
            code="UNSUPPORTED_VERSION",
        )
    return version


def parse_languages(body: dict[str, Any]) -> list[str]:
    """Normalised tags in the client's order; missing or empty means English."""
    languages = body.get("languages")
    if languages is None or languages == []:
        return ["en"]
    if not isinstance(languages, list) or not all(isinstance(c, str) for c in languages):
        raise InvalidRequest(
            'languages must be a list of language codes, e.g. ["en", "ru"]',
            code="INVALID_LANGUAGES",
        )
    normalized = normalize_languages(languages)
    if len(normalized) > MAX_LANGUAGES:
        raise InvalidRequest(
            f"at most {MAX_LANGUAGES} languages per request; this one asks for {len(normalized)}",
            code="INVALID_LANGUAGES",
        )
    return normalized


def parse_lots(lots: list[Any]) -> list[dict[str, Any]]:
    """Each lot as the recipe takes it; every problem of every lot in one ``BadRequest``."""
    problems: list[dict[str, Any]] = []
    cleaned: list[dict[str, Any]] = []
    seen: defaultdict[str, list[int]] = defaultdict(list)

    def problem(index: int, lot_id: object, code: str, message: str) -> None:
        entry: dict[str, Any] = {"lot": index, "code": code, "message": message}
        if isinstance(lot_id, str):
            entry["lot_id"] = lot_id
        problems.append(entry)

    for index, lot in enumerate(lots):
        if not isinstance(lot, dict):
            problem(index, None, "INVALID_LOT", f"lots[{index}] must be an object")
            continue
        lot_id = lot.get("lot_id")
        name = f"lot {lot_id!r}" if isinstance(lot_id, str) and lot_id.strip() else f"lots[{index}]"
        if not isinstance(lot_id, str) or not lot_id.strip():
            problem(index, lot_id, "EMPTY_LOT_ID", f"{name}: lot_id must be a non-empty string")
        elif len(lot_id) > MAX_LOT_ID:
            problem(index, lot_id, "INVALID_LOT", f"{name}: lot_id is over {MAX_LOT_ID} characters")
        else:
            seen[lot_id].append(index)
        info = lot.get("additional_info")
        if info is not None and not isinstance(info, str):
            problem(index, lot_id, "INVALID_LOT", f"{name}: additional_info must be a string")
        elif info is not None and len(info) > MAX_ADDITIONAL_INFO:
            problem(
                index,
                lot_id,
                "INVALID_LOT",
                f"{name}: additional_info is over {MAX_ADDITIONAL_INFO} characters",
            )
        urls = _image_urls(index, lot_id, name, lot.get("images"), problem)
        cleaned.append({"lot_id": lot_id, "additional_info": info or "", "images": urls})
    for lot_id, indexes in seen.items():
        if len(indexes) > 1:
            where = ", ".join(f"lots[{i}]" for i in indexes)
            problem(
                indexes[1],
                lot_id,
                "DUPLICATE_LOT_ID",
                f"lot_id {lot_id!r} appears {len(indexes)} times ({where}); lot ids must be unique",
            )
    if problems:
        codes = {p["code"] for p in problems}
        first = problems[0]["message"]
        message = first if len(problems) == 1 else f"{len(problems)} problems in lots; {first}"
        raise InvalidRequest(
            message,
            code=codes.pop() if len(codes) == 1 else "INVALID_LOTS",
            details={"problems": problems[:MAX_PROBLEMS], "count": len(problems)},
        )
    return cleaned


Problem = Callable[[int, object, str, str], None]


def _image_urls(
    index: int, lot_id: object, name: str, images: object, problem: Problem
) -> list[dict[str, str]]:
    if not isinstance(images, list):
        problem(index, lot_id, "INVALID_LOT", f'{name}: images must be a list of {{"url": ...}}')
        return []
    if not images:
        problem(index, lot_id, "NO_IMAGES", f"{name} has no images; send at least one")
    if len(images) > MAX_IMAGES:
        problem(
            index,
            lot_id,
            "TOO_MANY_IMAGES",
            f"{name} has {len(images)} images; at most {MAX_IMAGES} are allowed per lot",
        )
        return []
    urls: list[dict[str, str]] = []
    for number, image in enumerate(images, start=1):
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url.strip():
            problem(
                index, lot_id, "INVALID_IMAGE_URL", f'{name} image {number}: give {{"url": ...}}'
            )
            continue
        reason = url_problem(url)
        if reason is not None:
            problem(index, lot_id, "INVALID_IMAGE_URL", f"{name} image {number}: {reason}")
            continue
        urls.append({"url": url})
    return urls


def url_problem(url: str) -> str | None:
    """Why an image URL is refused before any fetch (the SSRF checks come at fetch time)."""
    if len(url) > MAX_URL:
        return f"the URL is over {MAX_URL} characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the URL is malformed"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{scheme}:" if scheme else "a relative URL"
        return f"only http and https image URLs are accepted, not {shown}"
    if not parts.hostname:
        return "the URL has no host"
    return None


# -- answers -----------------------------------------------------------------------------


def iso(moment: datetime | None) -> str | None:
    """The seed's timestamps: UTC, whole seconds, ``Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DescriptionOut(BaseModel):
    language: str
    damages: str = Field(..., description="Sanitized HTML: <p> <ul> <li> <b> <i> <br> only")


class SyncLotOut(BaseModel):
    lot_id: str
    descriptions: list[DescriptionOut]


class SyncAnswerOut(BaseModel):
    version: str
    lots: list[SyncLotOut]
    warnings: list[str]


class BatchAcceptedOut(BaseModel):
    job_id: str
    status: Literal["accepted"] = "accepted"
    creation_time: str = Field(..., description='Seconds taken to accept, e.g. "1.23s"')
    lots_count: int


class ProgressOut(BaseModel):
    total_lots: int
    processed_lots: int = Field(..., description="Lots finished, described or failed")
    failed_lots: int
    completion_percentage: float


class BatchStatusOut(BaseModel):
    job_id: str
    status: JobStatus
    created_at: str
    updated_at: str
    progress: ProgressOut
    languages: list[str]
    error_message: str | None = Field(None, description="Only for failed or cancelled jobs")

    @classmethod
    def from_row(cls, job: JobRow, error_message: str | None = None) -> BatchStatusOut:
        processed = job.completed + job.failed
        return cls(
            job_id=job.id,
            status=seed_status(job),
            created_at=iso(job.created_at) or "",
            updated_at=iso(job.updated_at) or "",
            progress=ProgressOut(
                total_lots=job.total,
                processed_lots=processed,
                failed_lots=job.failed,
                completion_percentage=round(100.0 * processed / job.total, 1) if job.total else 0,
            ),
            languages=list(job.languages or ["en"]),
            error_message=error_message,
        )

    def answer(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class LotResultOut(BaseModel):
    lot_id: str
    status: Literal["completed", "failed", "cancelled", "pending"]
    descriptions: list[DescriptionOut]
    warnings: list[str] | None = None
    error: str | None = None

    @classmethod
    def from_row(cls, item: ItemRow) -> LotResultOut:
        output = item.output or {}
        status = item.status if item.status in ("completed", "failed", "cancelled") else "pending"
        descriptions = output.get("descriptions") if status == "completed" else None
        return cls(
            lot_id=item.key or str(item.input.get("lot_id", "")),
            status=status,
            descriptions=[DescriptionOut.model_validate(d) for d in descriptions or []],
            warnings=list(output.get("warnings") or []) or None,
            error=item.error if status == "failed" else None,
        )


class ResultsOut(BaseModel):
    lots: list[LotResultOut]


class BatchResultsOut(BaseModel):
    job_id: str
    status: JobStatus
    completed_at: str | None
    results: ResultsOut

    def answer(self) -> dict[str, Any]:
        body = self.model_dump()
        body["results"]["lots"] = [lot.model_dump(exclude_none=True) for lot in self.results.lots]
        return body


class NotReadyOut(BaseModel):
    job_id: str
    status: JobStatus
    message: str
    progress: ProgressOut


class BatchJobsOut(BaseModel):
    jobs: list[BatchStatusOut]
    limit: int
    offset: int
    has_more: bool


REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["signature", "lots"],
    "properties": {
        "signature": {
            "type": "string",
            "description": "hex HMAC-SHA256 of json.dumps(lots, separators=(',', ':'), "
            "sort_keys=True) with the client's shared key; no sha256= prefix",
        },
        "version": {"type": "string", "enum": list(SUPPORTED_VERSIONS)},
        "languages": {
            "type": "array",
            "items": {"type": "string"},
            "description": 'ISO 639-1 or BCP-47 tags; empty or missing means ["en"]',
        },
        "lots": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["lot_id", "images"],
                "properties": {
                    "lot_id": {"type": "string", "maxLength": MAX_LOT_ID},
                    "additional_info": {"type": "string", "maxLength": MAX_ADDITIONAL_INFO},
                    "images": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_IMAGES,
                        "items": {
                            "type": "object",
                            "required": ["url"],
                            "properties": {"url": {"type": "string", "format": "uri"}},
                        },
                    },
                },
            },
        },
    },
}
