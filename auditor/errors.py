"""One exception root for the auditor, with the few kinds a caller acts on.

A caller needs to know two things: may it retry, and which input is at fault.
Bad *records* are not exceptions: they are rejections (counted, dead-lettered)
and never stop a run. These exceptions are for inputs and services that make a
run impossible or a verdict impossible for now.
"""

from __future__ import annotations


class AuditorError(Exception):
    """Root of every error the auditor raises on purpose."""

    retriable = False


class InputError(AuditorError):
    """A file or directory that cannot be read as what it claims to be.

    Carries the path and, where known, the line, so the one-line message names
    exactly what to fix. Not retriable: the same bytes fail the same way.
    """

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConfigError(AuditorError):
    """Flags or environment that do not form a valid configuration."""


class AuthorityUnavailable(AuditorError):
    """The authority could not answer now (unreachable, throttled, timed out).

    Retriable by definition: a verdict that needs the answer waits; it is never
    turned into a loss or a counter finding.
    """

    retriable = True


class RecordRejected(AuditorError):
    """A record that fails validation: counted by `reason`, dead-lettered, never fatal.

    `reason` is one of the low-cardinality labels in docs/semantics.md; the
    message says which field and why, for the dead-letter file.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
