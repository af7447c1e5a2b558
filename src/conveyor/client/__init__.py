"""Python clients for Conveyor's APIs."""

from conveyor.client.native import FINISHED, ApiError, AsyncConveyor, Conveyor

__all__ = ["FINISHED", "ApiError", "AsyncConveyor", "Conveyor"]
