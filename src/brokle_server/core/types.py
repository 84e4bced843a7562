"""Types shared across features."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProjectScope:
    """The tenant a request acts for, taken from its credentials, never from its payload.

    ``environment`` is set when the API key is bound to one environment; telemetry then
    always lands in that environment.
    """

    organization_id: uuid.UUID
    project_id: uuid.UUID
    environment: str | None = None
    retention_days: int = 30
