"""`auditor demo` (the README's first command) runs end to end and its verdicts
match what it injected."""

import pytest

from auditor.cli import main
from auditor.processes import free_port

pytestmark = pytest.mark.integration


def test_demo_finds_exactly_what_it_injected(capsys):
    rc = main(["demo", "--messages", "1500", "--chats", "20", "--http-port", str(free_port())])
    out = capsys.readouterr().out
    assert "the verdicts match what was injected" in out, out[-2000:]
    assert "MISMATCH" not in out
    assert rc == 0
