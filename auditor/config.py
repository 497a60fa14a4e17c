"""Configuration: typed, frozen, built once at the edge (CLI flags, environment).

Nothing below the CLI reads `os.environ`; it receives these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .engine import EngineConfig
from .verification import VerificationPolicy

if TYPE_CHECKING:
    from .dynamo.config import DynamoConfig


@dataclass(frozen=True, slots=True)
class AttributeNames:
    """DynamoDB attribute names (contract section 4 defaults)."""

    chat_id: str = "chat_id"
    sequence: str = "sequence"
    message_id: str = "message_id"
    last_sequence: str = "last_sequence"


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    dumps: tuple[Path, ...]
    messages_export: Path | None = None
    counters_export: Path | None = None
    report: Path | None = None
    dead_letter: Path | None = None
    metrics_out: Path | None = None
    progress: bool = False
    attributes: AttributeNames = field(default_factory=AttributeNames)
    engine: EngineConfig = field(default_factory=EngineConfig)
    dynamo: "DynamoConfig | None" = None  # live tables instead of exports
    has_messages_table: bool = True
    has_counters_table: bool = True
    authority_wait: float = 600.0
    verification: VerificationPolicy = field(default_factory=VerificationPolicy)
