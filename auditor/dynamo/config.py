"""Where the live authority is and how hard to try before saying "not now"."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import AttributeNames


@dataclass(frozen=True, slots=True)
class TableNames:
    """DynamoDB table names (contract section 4 defaults)."""

    messages: str = "messages"
    chat_counters: str = "chat_counters"


@dataclass(frozen=True, slots=True)
class DynamoConfig:
    """Everything the reader and the table tools need; built once at the edge.

    `endpoint_url` None means AWS's regional endpoint; DynamoDB Local is e.g.
    `http://127.0.0.1:8000`. Credentials are not here: they come from the
    aioboto3 session the caller passes (or the default credential chain).
    """

    endpoint_url: str | None = None
    region: str = "us-east-1"
    tables: TableNames = field(default_factory=TableNames)
    attributes: AttributeNames = field(default_factory=AttributeNames)
    # Strongly consistent by default: an eventually consistent read can miss an
    # item written just before its event was published, i.e. a false loss.
    consistent_read: bool = True
    max_in_flight: int = 8          # concurrent requests per reader
    request_timeout: float = 5.0    # seconds, one HTTP request including connect
    max_attempts: int = 6           # per request (errors) / per batch (no progress)
    backoff_base: float = 0.05      # seconds; full jitter over base * 2**retry
    backoff_cap: float = 2.0        # seconds; upper bound of one backoff sleep
    breaker_failures: int = 5       # consecutive failed requests that open the breaker
    breaker_open_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.max_attempts < 1:
            raise ValueError("max_in_flight and max_attempts must be >= 1")
        if min(self.request_timeout, self.backoff_base, self.backoff_cap, self.breaker_open_seconds) <= 0:
            raise ValueError("timeouts and backoff durations must be > 0")
