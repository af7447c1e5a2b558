"""Generic durable work queue in the SQL database; knows nothing of jobs or providers."""

from conveyor.queue.errors import LostTask, RetryDecision, TaskParked, retry_decision
from conveyor.queue.models import NewTask, Task
from conveyor.queue.repository import QueueRepository
from conveyor.queue.retry import RetryPolicy
from conveyor.queue.worker import TaskContext, TaskRegistry, Worker, WorkerConfig

__all__ = [
    "LostTask",
    "NewTask",
    "QueueRepository",
    "RetryDecision",
    "RetryPolicy",
    "Task",
    "TaskContext",
    "TaskParked",
    "TaskRegistry",
    "Worker",
    "WorkerConfig",
    "retry_decision",
]
