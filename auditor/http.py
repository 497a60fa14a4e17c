"""The auditor's one HTTP server: Prometheus metrics and Kubernetes-style probes (aiohttp).

    async with HealthServer(registry, alive=heartbeat, ready=readiness, host="0.0.0.0", port=9102) as server:
        ...                     # server.port is the bound port (useful with port=0)

Routes (GET and HEAD):

- `/metrics`: the text exposition of `registry` (prometheus_client), with the
  content type the scraper negotiated through `Accept` (classic text 0.0.4 by
  default, OpenMetrics when asked); gzip when the scraper accepts it.
- `/healthz`: liveness. 200 {"status": "ok"} while `alive()` says so, else 503
  {"status": "unhealthy", "reason": ...}. The server runs on the process's event
  loop, so a blocked loop cannot answer at all and the probe times out: that is
  part of the liveness signal. `alive` adds what the loop cannot see by itself,
  e.g. the consume loop's `Heartbeat`.
- `/readyz`: readiness. 200 {"status": "ready"} only when `ready()` says so
  (partitions assigned and their state restored), else 503
  {"status": "not_ready", "reason": ...}.

A check is a callable returning `bool` or `(bool, reason)`; it may be a
coroutine function (awaited for at most `check_timeout` seconds). A check
that raises or times out counts as a failure; the reason names the exception
type only (its text could carry anything), and the exception is logged. Checks
and metric collection run on the event loop, between the loop's other work:
keep them cheap, and they see the loop's state consistently.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any, Awaitable, Callable, Union

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = ["Check", "HealthServer", "Heartbeat", "Readiness"]

log = logging.getLogger(__name__)

CheckResult = Union[bool, "tuple[bool, str]"]
Check = Callable[[], Union[CheckResult, Awaitable[CheckResult]]]
JSON_TYPE = "application/json"


class Heartbeat:
    """A liveness check: alive while `beat()` was called within the last `max_silence` seconds.

    The consume loop calls `beat()` once per iteration (including idle polls);
    a loop stuck in a call that never returns stops beating.
    """

    def __init__(self, max_silence: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        if max_silence <= 0:
            raise ValueError("max_silence must be > 0")
        self.max_silence, self._clock = max_silence, clock
        self.last = clock()

    def beat(self) -> None:
        self.last = self._clock()

    def __call__(self) -> tuple[bool, str]:
        silence = self._clock() - self.last
        if silence <= self.max_silence:
            return True, "ok"
        return False, f"no heartbeat for {silence:.1f}s (limit {self.max_silence:g}s)"


class Readiness:
    """A readiness check that the consumer flips: not ready until `set_ready()`.

    The rebalance listener calls `set_not_ready("rebalancing")` when partitions
    are revoked and `set_ready()` once the new assignment's state is restored.
    """

    def __init__(self, reason: str = "starting") -> None:
        self.ready, self.reason = False, reason

    def set_ready(self) -> None:
        self.ready, self.reason = True, "ready"

    def set_not_ready(self, reason: str) -> None:
        self.ready, self.reason = False, reason

    def __call__(self) -> tuple[bool, str]:
        return self.ready, self.reason


class HealthServer:
    """aiohttp server for /metrics, /healthz and /readyz on `host:port` (0 = any free port).

    An async context manager; `start()`/`stop()` do the same by hand. After start,
    `port` is the bound port and `url` the base URL.
    """

    def __init__(self, registry: CollectorRegistry, alive: Check, ready: Check, host: str = "127.0.0.1",
                 port: int = 0, *, check_timeout: float = 2.0) -> None:
        self.registry, self.alive, self.ready = registry, alive, ready
        self.host, self.requested_port, self.check_timeout = host, port, check_timeout
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def start(self) -> "HealthServer":
        if self._runner is not None:
            return self
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("health server listening on %s", self.url,
                 extra={"event": "http_server_started", "operation": "listen"})
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> "HealthServer":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- handlers ----------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        try:
            body = encoder(self.registry)
        except Exception as exc:
            log.exception("collecting metrics failed", extra={"event": "metrics_collect_failed"})
            return web.Response(status=500, text=f"collecting metrics failed: {type(exc).__name__}\n")
        response = web.Response(body=body, headers={"Content-Type": content_type})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression()
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, reason = await self._run_check(self.alive, "liveness")
        if ok:
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "unhealthy", "reason": reason}, status=503)

    async def _readyz(self, request: web.Request) -> web.Response:
        ok, reason = await self._run_check(self.ready, "readiness")
        if ok:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not_ready", "reason": reason}, status=503)

    async def _run_check(self, check: Check, name: str) -> tuple[bool, str]:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.check_timeout)
        except asyncio.TimeoutError:
            return False, f"{name} check timed out after {self.check_timeout:g}s"
        except Exception as exc:
            log.exception("%s check raised", name, extra={"event": "probe_check_failed", "operation": name})
            return False, f"{name} check raised {type(exc).__name__}"
        if isinstance(result, tuple):
            ok, reason = bool(result[0]), str(result[1]) if len(result) > 1 else ""
        else:
            ok, reason = bool(result), ""
        return ok, reason or ("ok" if ok else f"{name} check failed")
