"""DynamoDB as the live authority: configuration, a batched reader, table tools.

Pure asyncio + aioboto3; nothing here uses the engine (only AttributeNames
and the metrics module are shared). See
`auditor.dynamo.requests` for the retry/backoff protocol every request follows.
"""

from .breaker import BreakerState, CircuitBreaker
from .config import DynamoConfig, TableNames
from .reader import AuthorityReader
from .tables import create_tables, load_export

__all__ = ["AuthorityReader", "BreakerState", "CircuitBreaker", "DynamoConfig", "TableNames",
           "create_tables", "load_export"]
