"""Real services on loopback for integration tests.

`dynamodb_local` is AWS's DynamoDB Local (fetched by scripts/dynamodb-local),
started once per session on a free port, in memory. Tests that must stop and
restart it use `DynamoDBLocal` directly, with their own process.
"""

from __future__ import annotations

from pathlib import Path

import aioboto3
import pytest

from auditor.dynamo.local import LOCAL_CREDENTIALS, DynamoDBLocal, dynamodb_local_dir, free_port
from auditor.errors import ConfigError

CREDENTIALS = LOCAL_CREDENTIALS


@pytest.fixture(scope="session")
def dynamodb_local_jar() -> Path:
    try:
        return dynamodb_local_dir()
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def dynamodb_local_server(dynamodb_local_jar, tmp_path_factory):
    server = DynamoDBLocal(dynamodb_local_jar, free_port(), tmp_path_factory.mktemp("ddb") / "dynamodb-local.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dynamodb_local(dynamodb_local_server) -> str:
    """The endpoint URL of a session-wide DynamoDB Local (in memory)."""
    return dynamodb_local_server.endpoint


@pytest.fixture
def aws_session() -> aioboto3.Session:
    return aioboto3.Session(**CREDENTIALS)


# --- Kafka: a Tansu broker (Kafka-wire-compatible, in memory; see shared/lab.md) ---


@pytest.fixture(scope="session")
def tansu(tmp_path_factory):
    """A session-wide Tansu broker on a free loopback port (empty at start; memory only).

    Tests share it: each should use its own topic names and group ids. Tests that
    must stop or restart a broker start their own `auditor.kafka.TansuBroker`.
    """
    from auditor.kafka import TansuBroker

    broker = TansuBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tansu) -> str:
    """The session broker's bootstrap servers string, "127.0.0.1:PORT"."""
    return tansu.bootstrap
