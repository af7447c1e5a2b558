"""``POST /v1/callbacks/{provider}/{step_run_id}/{expires}/{signature}``: providers saying a
task may be done. No API key: the signed URL is the credential, and the provider's own
signature is checked where its secret is configured (``execution.callbacks``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from conveyor.deps import CallbackReceiverDep

router = APIRouter(prefix="/v1/callbacks", tags=["provider callbacks"])


class CallbackAnswer(BaseModel):
    received: bool
    action: Literal["woken", "ignored"]
    message: str


@router.post(
    "/{provider}/{step_run_id}/{expires}/{signature}",
    response_model=CallbackAnswer,
    summary="A provider's callback for one step (the URL Conveyor sent with the task)",
    responses={
        # Every refusal is the usual JSON error and changes nothing.
        400: {"description": "The body is not JSON or names no task"},
        401: {"description": "Forged, expired or late: signature or time window wrong"},
        404: {"description": "No such step waits for this provider"},
        409: {"description": "A replay, or a callback about another task"},
    },
)
async def provider_callback(
    request: Request,
    receiver: CallbackReceiverDep,
    provider: Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")],
    step_run_id: Annotated[str, Path(max_length=128)],
    expires: Annotated[str, Path(max_length=12)],
    signature: Annotated[str, Path(max_length=128)],
) -> CallbackAnswer:
    outcome = await receiver.receive(
        provider=provider,
        step_run_id=step_run_id,
        expires=expires,
        signature=signature,
        headers=request.headers,
        body=await request.body(),
    )
    return CallbackAnswer(received=True, action=outcome.action, message=outcome.reason)
