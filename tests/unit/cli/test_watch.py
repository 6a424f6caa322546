"""`troupe events` usage and failure paths (reading a real event log is in
tests/integration/runtime/test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from troupe.cli import cli


@pytest.fixture()
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no local runtime here
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    return CliRunner()


def test_an_invalid_filter_is_refused_before_reading_kafka(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["events", "--filter", "type LIKE 3"])
    assert result.exit_code == 2
    assert "invalid CESQL at column 11: expected a string literal, found '3'" in result.output
    assert "Traceback" not in result.output


def test_a_valid_filter_still_needs_an_event_log(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["events", "--filter", "type LIKE 'dev.troupe.%'"])
    assert result.exit_code == 1
    assert "troupe up --detach" in result.output
