"""The complete schema: importing this module registers every domain's tables on
``metadata``. Only migrations and test set-up import it (they need all tables at once)."""

from __future__ import annotations

import conveyor.assets.models
import conveyor.catalog.models
import conveyor.clients.models
import conveyor.compat.boxes.models
import conveyor.execution.models
import conveyor.jobs.models
import conveyor.queue.models  # noqa: F401
from conveyor.core.models import metadata

__all__ = ["metadata"]
