"""Python clients for Conveyor's APIs."""

from conveyor.client.descriptions import (
    AsyncDescriptionsClient,
    DescriptionsClient,
    DescriptionsError,
    DescriptionsTimeout,
)
from conveyor.client.native import FINISHED, ApiError, AsyncConveyor, Conveyor

__all__ = [
    "FINISHED",
    "ApiError",
    "AsyncConveyor",
    "AsyncDescriptionsClient",
    "Conveyor",
    "DescriptionsClient",
    "DescriptionsError",
    "DescriptionsTimeout",
]
