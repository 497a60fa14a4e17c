"""The HTTP server: /metrics exposition, /healthz and /readyz following their checks. Loopback only."""

from __future__ import annotations

import asyncio
import gzip
import json

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from auditor.http import HealthServer, Heartbeat, Readiness


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def get(session: aiohttp.ClientSession, url: str, **kwargs) -> tuple[int, dict, bytes]:
    async with session.get(url, **kwargs) as response:
        return response.status, dict(response.headers), await response.read()


def test_metrics_exposes_the_registry_as_prometheus_text():
    registry = CollectorRegistry()
    counter = Counter("auditor_test_events", "Test counter", ["kind"], registry=registry)
    counter.labels(kind="persisted").inc(3)

    async def scenario():
        async with HealthServer(registry, alive=lambda: True, ready=lambda: True, port=0) as server:
            assert server.host == "127.0.0.1" and server.port > 0
            async with aiohttp.ClientSession() as session:
                first = await get(session, f"{server.url}/metrics")
                counter.labels(kind="persisted").inc()
                second = await get(session, f"{server.url}/metrics")
                openmetrics = await get(session, f"{server.url}/metrics",
                                        headers={"Accept": "application/openmetrics-text; version=1.0.0"})
                head = await session.head(f"{server.url}/metrics")
                head.release()
        return first, second, openmetrics, head.status

    (status, headers, body), second, openmetrics, head_status = run(scenario())
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'auditor_test_events_total{kind="persisted"} 3.0' in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["auditor_test_events"].type == "counter"
    assert 'auditor_test_events_total{kind="persisted"} 4.0' in second[2].decode()  # live, not a snapshot
    assert openmetrics[0] == 200
    assert openmetrics[1]["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics[2].decode().rstrip().endswith("# EOF")
    assert head_status == 200


def test_metrics_are_gzipped_when_the_scraper_accepts_it():
    registry = CollectorRegistry()
    Counter("auditor_test_gzip", "Test counter", registry=registry).inc()

    async def scenario():
        async with HealthServer(registry, alive=lambda: True, ready=lambda: True) as server:
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                return await get(session, f"{server.url}/metrics", headers={"Accept-Encoding": "gzip"})

    status, headers, body = run(scenario())
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    assert b"auditor_test_gzip_total 1.0" in gzip.decompress(body)


def test_healthz_and_readyz_follow_their_callables():
    state = {"alive": True, "ready": False}

    async def scenario():
        seen = []
        async with HealthServer(CollectorRegistry(), alive=lambda: state["alive"],
                                ready=lambda: (state["ready"], "partitions not assigned")) as server:
            async with aiohttp.ClientSession() as session:
                for alive, ready in ((True, False), (True, True), (False, True), (True, False)):
                    state.update(alive=alive, ready=ready)
                    healthz = await get(session, f"{server.url}/healthz")
                    readyz = await get(session, f"{server.url}/readyz")
                    seen.append((healthz[0], json.loads(healthz[2]), readyz[0], json.loads(readyz[2]),
                                 readyz[1]["Content-Type"]))
        return seen

    seen = run(scenario())
    assert [(h, r) for h, _, r, _, _ in seen] == [(200, 503), (200, 200), (503, 200), (200, 503)]
    assert seen[0][1] == {"status": "ok"}
    assert seen[0][3] == {"status": "not_ready", "reason": "partitions not assigned"}
    assert seen[0][4].startswith("application/json")
    assert seen[1][3] == {"status": "ready"}
    assert seen[2][1] == {"status": "unhealthy", "reason": "liveness check failed"}


def test_checks_that_raise_hang_or_are_async():
    async def slow_ready():
        await asyncio.sleep(5)
        return True

    async def async_alive():
        return True, "ok"

    def broken_ready():
        raise RuntimeError("secret-ish detail")

    async def scenario():
        results = {}
        async with aiohttp.ClientSession() as session:
            async with HealthServer(CollectorRegistry(), alive=async_alive, ready=slow_ready,
                                    check_timeout=0.2) as server:
                results["alive"] = await get(session, f"{server.url}/healthz")
                results["slow"] = await get(session, f"{server.url}/readyz")
            async with HealthServer(CollectorRegistry(), alive=lambda: True, ready=broken_ready) as server:
                results["broken"] = await get(session, f"{server.url}/readyz")
        return results

    results = run(scenario())
    assert results["alive"][0] == 200
    assert results["slow"][0] == 503 and "timed out" in json.loads(results["slow"][2])["reason"]
    broken = json.loads(results["broken"][2])
    assert results["broken"][0] == 503 and broken["reason"] == "readiness check raised RuntimeError"
    assert "secret" not in results["broken"][2].decode()


def test_metrics_collection_failure_is_a_500():
    class Failing:
        def collect(self):
            raise RuntimeError("boom")

    registry = CollectorRegistry()
    registry.register(Failing())

    async def scenario():
        async with HealthServer(registry, alive=lambda: True, ready=lambda: True) as server:
            async with aiohttp.ClientSession() as session:
                return await get(session, f"{server.url}/metrics")

    status, _, body = run(scenario())
    assert status == 500 and b"RuntimeError" in body


def test_server_stops_and_frees_its_port():
    async def scenario():
        server = HealthServer(CollectorRegistry(), alive=lambda: True, ready=lambda: True)
        with pytest.raises(RuntimeError):
            server.url
        await server.start()
        port = server.port
        await server.stop()
        await server.stop()  # idempotent
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await get(session, f"http://127.0.0.1:{port}/healthz")
        # the same port can be bound again (what a restart inside one process does)
        async with HealthServer(CollectorRegistry(), alive=lambda: True, ready=lambda: True, port=port) as again:
            assert again.port == port
            async with aiohttp.ClientSession() as session:
                return (await get(session, f"{again.url}/healthz"))[0]

    assert run(scenario()) == 200


def test_unknown_path_is_404():
    async def scenario():
        async with HealthServer(CollectorRegistry(), alive=lambda: True, ready=lambda: True) as server:
            async with aiohttp.ClientSession() as session:
                return (await get(session, f"{server.url}/nope"))[0]

    assert run(scenario()) == 404


def test_heartbeat_and_readiness_helpers():
    now = [100.0]
    beat = Heartbeat(max_silence=10, clock=lambda: now[0])
    assert beat() == (True, "ok")
    now[0] = 111.0
    ok, reason = beat()
    assert not ok and "no heartbeat for 11.0s" in reason
    beat.beat()
    assert beat()[0]
    with pytest.raises(ValueError):
        Heartbeat(0)

    readiness = Readiness()
    assert readiness() == (False, "starting")
    readiness.set_ready()
    assert readiness() == (True, "ready")
    readiness.set_not_ready("rebalancing")
    assert readiness() == (False, "rebalancing")
