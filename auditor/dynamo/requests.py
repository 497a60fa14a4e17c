"""Sending one DynamoDB request carefully: breaker, bounded concurrency, timeout, retries.

The retry/backoff protocol, for one logical request (one page of a Query or
Scan, or one BatchGetItem/BatchWriteItem of at most 100/25 entries):

1. Ask the circuit breaker. If it is open, raise `AuthorityUnavailable` at
   once: nothing is sent, and the caller waits and retries later (a dead
   endpoint must not cost every verdict its whole retry budget).
2. Take one of `max_in_flight` semaphore slots, send the request under
   `request_timeout` seconds (asyncio timeout, plus botocore's connect/read
   timeouts), give the slot back.
3. Classify the outcome:
   a. an answer: the breaker records a success;
   b. throttling (ProvisionedThroughputExceededException, ThrottlingException,
      RequestLimitExceeded): retriable, counted as a throttle; not a breaker
      failure, because the endpoint answered and one hot partition must not cut
      off reads for every chat;
   c. HTTP 5xx, a connection error or a timeout: retriable, a breaker failure;
   d. anything else (validation, missing table, access denied): the same
      request would fail the same way, so raise `ConfigError` naming the code.
4. After b or c: if this was attempt `max_attempts`, raise `AuthorityUnavailable`
   chained to the last error. Otherwise sleep a full-jitter backoff,
   uniform(0, min(backoff_cap, backoff_base * 2**retry)), holding no slot, and
   go back to step 1. botocore's own retries are switched off so that this is
   the only retry loop and every retry is counted.
5. Batch operations may answer with some entries unprocessed (UnprocessedKeys /
   UnprocessedItems). Only those are sent again, as a new logical request
   (steps 1-4), after a full-jitter backoff whose exponent grows with every
   resend. A resend that processed nothing counts toward `max_attempts`; after
   `max_attempts` such resends in a row, raise `AuthorityUnavailable`.

An entry that could not be read is never reported as absent: the error
propagates and the verdict waits.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Awaitable, Callable

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import (BotoCoreError, ClientError, ConnectTimeoutError,
                                 HTTPClientError, ReadTimeoutError)
from botocore.exceptions import ConnectionError as BotoConnectionError

from ..errors import AuthorityUnavailable, ConfigError
from ..metrics import DynamoMetrics
from .breaker import BreakerState, CircuitBreaker
from .config import DynamoConfig

THROTTLE_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException",
                            "RequestLimitExceeded"})


def open_client(config: DynamoConfig, session: aioboto3.Session | None = None):
    """An async context manager yielding a low-level DynamoDB client for `config`."""
    session = session if session is not None else aioboto3.Session()
    timeout = config.request_timeout
    return session.client(
        "dynamodb", endpoint_url=config.endpoint_url, region_name=config.region,
        config=AioConfig(connect_timeout=timeout, read_timeout=timeout,
                         retries={"total_max_attempts": 1},  # step 4: our loop retries, not botocore's
                         max_pool_connections=config.max_in_flight))


def _entries(request_items: dict) -> int:
    """Keys (BatchGetItem) or write requests (BatchWriteItem) across tables."""
    return sum(len(v["Keys"]) if isinstance(v, dict) else len(v) for v in request_items.values())


class Requester:
    """Steps 1-5 above, around one client. `client` is public so tests can inject faults."""

    def __init__(self, client: Any, config: DynamoConfig, metrics: DynamoMetrics | None = None,
                 *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 jitter: Callable[[], float] = random.random) -> None:
        self.client = client
        self.config = config
        self.metrics = metrics if metrics is not None else DynamoMetrics()
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_open_seconds,
                                      on_change=self._breaker_changed)
        self.metrics.breaker_state.set(int(BreakerState.CLOSED))
        self._slots = asyncio.Semaphore(config.max_in_flight)
        self._sleep = sleep
        self._jitter = jitter

    def _breaker_changed(self, state: BreakerState) -> None:
        self.metrics.breaker_state.set(int(state))

    async def backoff(self, retry: int) -> None:
        c = self.config
        await self._sleep(self._jitter() * min(c.backoff_cap, c.backoff_base * 2 ** retry))

    async def call(self, operation: str, method: str, size: int | None = None, **kwargs: Any) -> dict:
        """Steps 1-4: the response of `client.<method>(**kwargs)`, or an exception."""
        last: BaseException | None = None
        for attempt in range(self.config.max_attempts):
            if not self.breaker.allow():
                self.metrics.requests.labels(operation, "breaker_open").inc()
                raise AuthorityUnavailable(f"DynamoDB {operation}: circuit breaker open, request not sent") from last
            if size is not None:
                self.metrics.keys_per_request.labels(operation).observe(size)
            response, reason, last = await self._send(operation, method, kwargs)
            if response is not None:
                return response
            if attempt + 1 < self.config.max_attempts:
                self.metrics.retries.labels(reason).inc()
                await self.backoff(attempt)
        raise AuthorityUnavailable(
            f"DynamoDB {operation}: no answer after {self.config.max_attempts} attempts ({last!r})") from last

    async def _send(self, operation: str, method: str, kwargs: dict):
        """One attempt: (response, None, None) or (None, reason, error) for a retriable error."""
        fn = getattr(self.client, method)  # looked up per call, so a patched method is used
        async with self._slots:
            start = time.perf_counter()
            try:
                async with asyncio.timeout(self.config.request_timeout):
                    response = await fn(**kwargs)
            except ClientError as exc:
                reason = self._client_error(operation, exc)
                error: BaseException = exc
            except (TimeoutError, ReadTimeoutError, ConnectTimeoutError) as exc:
                reason, error = "timeout", exc
                self.breaker.failure()
            except (BotoConnectionError, HTTPClientError, aiohttp.ClientError, OSError) as exc:
                reason, error = "connection", exc
                self.breaker.failure()
            except BotoCoreError as exc:  # e.g. no credentials, bad parameters: nothing was sent
                self.breaker.abandon()
                self.metrics.requests.labels(operation, "rejected").inc()
                raise ConfigError(f"DynamoDB {operation}: {exc}") from exc
            except BaseException:  # cancelled: no verdict on the endpoint
                self.breaker.abandon()
                raise
            else:
                self.breaker.success()
                partial = response.get("UnprocessedKeys") or response.get("UnprocessedItems")
                self.metrics.requests.labels(operation, "partial" if partial else "ok").inc()
                return response, None, None
            finally:
                self.metrics.latency.labels(operation).observe(time.perf_counter() - start)
        self.metrics.requests.labels(operation, reason).inc()
        return None, reason, error

    def _client_error(self, operation: str, exc: ClientError) -> str:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in THROTTLE_CODES:
            self.breaker.success()  # step 3b: the endpoint is up
            self.metrics.throttles.inc()
            return "throttled"
        if status >= 500 or code in ("InternalServerError", "ServiceUnavailable"):
            self.breaker.failure()
            return "server_error"
        self.breaker.success()
        self.metrics.requests.labels(operation, "rejected").inc()
        raise ConfigError(f"DynamoDB {operation} rejected: {code}: "
                          f"{exc.response.get('Error', {}).get('Message', '')}") from exc

    async def batch(self, operation: str, method: str, request_items: dict, unprocessed: str,
                    on_response: Callable[[dict], None]) -> None:
        """Step 5: send `request_items` until every entry is processed."""
        fruitless = retry = 0
        while True:
            sent = _entries(request_items)
            response = await self.call(operation, method, size=sent, RequestItems=request_items)
            on_response(response)
            left = response.get(unprocessed) or {}
            remaining = _entries(left)
            if remaining == 0:
                return
            fruitless = fruitless + 1 if remaining >= sent else 0
            if fruitless >= self.config.max_attempts:
                raise AuthorityUnavailable(f"DynamoDB {operation}: {remaining} entries unprocessed "
                                           f"after {fruitless} resends without progress")
            self.metrics.retries.labels("unprocessed").inc()
            await self.backoff(retry)
            retry += 1
            request_items = left
