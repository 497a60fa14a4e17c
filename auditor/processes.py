"""Child processes the auditor starts (brokers, emulators, servers in tests)."""

from __future__ import annotations

import socket
import subprocess


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it: bind to port 0)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def terminate(process: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Stop `process`: SIGTERM, wait up to `timeout` seconds, then SIGKILL."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
