"""Generic durable work queue in the SQL database; knows nothing of jobs or providers."""

from conveyor.queue.errors import LostTask, PermanentTaskError, RetryTaskLater
from conveyor.queue.repository import NewTask, QueueRepository, Task
from conveyor.queue.retry import RetryPolicy
from conveyor.queue.worker import TaskContext, TaskRegistry, Worker, WorkerConfig

__all__ = [
    "LostTask",
    "NewTask",
    "PermanentTaskError",
    "QueueRepository",
    "RetryPolicy",
    "RetryTaskLater",
    "Task",
    "TaskContext",
    "TaskRegistry",
    "Worker",
    "WorkerConfig",
]
