"""What the seed-004 API returns, field for field as the seed documents it.

Where Conveyor adds a field (``available`` on a model card; the analysis, the model that
made the cut-out and the fallbacks on a progress answer) it is an addition a seed client
ignores; no seed field is renamed, retyped or left out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

SeedStatus = Literal["processing", "completed", "error"]
SeedStep = Literal["uploading", "analyzing", "background", "final", "completed", "error"]


class SeedErrorOut(BaseModel):
    error: str = Field(..., examples=["INVALID_FILE_FORMAT"])
    message: str
    code: int = Field(..., examples=[4001], description="The seed's error number")


class ProcessingStartedOut(BaseModel):
    processing_id: str


class BatchStartedOut(BaseModel):
    batch_id: str


class Fallback(BaseModel):
    model: str
    error: str


class SingleProgressOut(BaseModel):
    status: SeedStatus
    current_step: SeedStep
    gpt_completed: bool
    background_processing: bool
    background_completed: bool
    final_processing: bool
    final_completed: bool
    error: str | None
    original_image_url: str
    background_image_url: str
    final_image_url: str
    # Conveyor's additions.
    error_code: int | None = Field(
        None, description="The seed's number for the fault: 5001 analysis, 5002 generation"
    )
    analysis: dict[str, object] | None = None
    background_model: str | None = None
    fallbacks: list[Fallback] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class BatchResultOut(BaseModel):
    filename: str
    status: SeedStatus
    original_url: str
    processed_url: str
    error: str | None = None


class BatchProgressOut(BaseModel):
    batch_id: str
    total_files: int
    processed_files: int
    current_file: str | None
    status: SeedStatus
    results: list[BatchResultOut]


class HistoryAnalysis(BaseModel):
    category: str | None
    description: str | None


class HistoryEntryOut(BaseModel):
    id: str
    batch_id: str | None
    filename: str | None
    upload_time: datetime
    processing_time: float | None = Field(..., description="Seconds, once finished")
    status: SeedStatus
    file_size: int | None
    analysis: HistoryAnalysis
    # Conveyor's additions: which model made the cut-out, and why the ones before it did not.
    background_model: str | None = None
    fallbacks: list[Fallback] = Field(default_factory=list)


class HistoryOut(BaseModel):
    history: list[HistoryEntryOut]


class ModelSpecOut(BaseModel):
    guidance_scale: float | None
    num_inference_steps: int | None
    supports_alpha: bool
    max_resolution: str | None
    memory_usage: str | None


class ModelCard(BaseModel):
    id: str
    name: str
    version: str | None
    provider: str
    endpoint: str
    dataset_notes: str
    pros: list[str]
    cons: list[str]
    spec: ModelSpecOut
    tags: list[str]
    supports_marketplaces: list[str]
    # Conveyor's additions.
    available: bool = True
    unavailable_reason: str | None = None


class ModelsOut(BaseModel):
    success: bool
    models: list[ModelCard]


class ModelOut(BaseModel):
    success: bool
    model: ModelCard


class HealthServices(BaseModel):
    openai: bool
    fal_ai: bool
    database: bool


class HealthOut(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: datetime
    services: HealthServices
    # Conveyor's additions: why a service is down, and whether the offline models can
    # still make cut-outs without any provider.
    reasons: dict[str, str] = Field(default_factory=dict)
    local_fallback: bool = False
