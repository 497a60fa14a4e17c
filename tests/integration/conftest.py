"""Real services on loopback for integration tests.

`dynamodb_local` is AWS's DynamoDB Local (fetched by scripts/dynamodb-local),
started once per session on a free port, in memory. Tests that must stop and
restart it use `DynamoDBLocal` directly, with their own process.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import aioboto3
import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
# DynamoDB Local accepts any credentials; these are not secrets.
CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local", "region_name": REGION}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dynamodb_local_dir() -> Path:
    run = subprocess.run([str(ROOT / "scripts" / "dynamodb-local")], capture_output=True, text=True)
    if run.returncode != 0:
        pytest.fail(f"scripts/dynamodb-local failed: {run.stderr.strip()}", pytrace=False)
    return Path(run.stdout.strip().splitlines()[-1])


class DynamoDBLocal:
    """One DynamoDB Local process; `start` again after `stop` reuses the port."""

    def __init__(self, directory: Path, port: int, log: Path, db_path: Path | None = None) -> None:
        self.directory, self.port, self.log = directory, port, log
        self.db_path = db_path  # None: in memory; a folder: data survives a restart
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None
        self.start_seconds = 0.0

    def start(self, timeout: float = 60.0) -> None:
        d = self.directory
        storage = ["-inMemory"] if self.db_path is None else ["-sharedDb", "-dbPath", str(self.db_path)]
        cmd = ["java", f"-Djava.library.path={d / 'DynamoDBLocal_lib'}", "-jar", str(d / "DynamoDBLocal.jar"),
               *storage, "-disableTelemetry", "-port", str(self.port)]
        started = time.monotonic()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(cmd, cwd=self.log.parent, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(started + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def _wait_ready(self, deadline: float) -> None:
        client = boto3.client("dynamodb", endpoint_url=self.endpoint, **CREDENTIALS,
                              config=Config(connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 1}))
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"DynamoDB Local exited ({self.process.returncode}); log: {self.log}")
            try:
                client.list_tables()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"DynamoDB Local not answering on {self.endpoint}; log: {self.log}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def dynamodb_local_jar() -> Path:
    return dynamodb_local_dir()


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
