"""`troupe publish` through click's runner, against a real HTTP receiver on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from troupe.cli import cli
from troupe.events import DATA_ARRIVED, from_http
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

VALID = {"uri": "incoming/batch-1.csv", "target": "label"}


class Receiver:
    """A broker ingress stand-in that records what it is sent and answers `status`."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 202

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        self.requests.append((dict(request.headers), request.get_data()))
        return Response(b"", status=self.status)(environ, start_response)


@pytest.fixture()
def receiver() -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}/troupe/default"
    server.shutdown()


@pytest.fixture()
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.delenv("TROUPE_BROKER", raising=False)
    monkeypatch.chdir(tmp_path)  # no local runtime state to be found here
    return CliRunner()


def test_publish_sends_a_valid_event_and_prints_its_id(runner: CliRunner, receiver) -> None:
    app, url = receiver
    result = runner.invoke(
        cli,
        [
            "publish",
            "data-arrived",
            "--data",
            json.dumps(VALID),
            "--broker",
            url,
            "-e",
            "partitionkey=batch-1",
        ],
    )
    assert result.exit_code == 0, result.output
    headers, body = app.requests[0]
    event = from_http(headers, body)
    assert event.get_type() == DATA_ARRIVED
    assert event.get_data() == VALID
    assert event.get_extension("partitionkey") == "batch-1"
    assert result.output.strip() == event.get_id()


def test_publish_reads_data_from_a_file_and_from_stdin(
    runner: CliRunner, receiver, tmp_path: Path
) -> None:
    app, url = receiver
    path = tmp_path / "data.json"
    path.write_text(json.dumps(VALID))
    assert (
        runner.invoke(
            cli, ["publish", "data-arrived", "--data", f"@{path}", "--broker", url]
        ).exit_code
        == 0
    )
    result = runner.invoke(cli, ["publish", DATA_ARRIVED, "--broker", url], input=json.dumps(VALID))
    assert result.exit_code == 0, result.output
    assert [from_http(h, b).get_data() for h, b in app.requests] == [VALID, VALID]


def test_schema_violation_names_the_field_and_sends_nothing(runner: CliRunner, receiver) -> None:
    app, url = receiver
    result = runner.invoke(
        cli, ["publish", "data-arrived", "--data", '{"uri": "x.csv"}', "--broker", url]
    )
    assert result.exit_code == 2
    assert "$.target" in result.output and "nothing was sent" in result.output
    assert app.requests == []


def test_unknown_type_is_a_usage_error_listing_the_vocabulary(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["publish", "data-arived", "--data", "{}"])
    assert result.exit_code == 2
    assert "unknown event type 'data-arived'" in result.output and "data-arrived" in result.output


def test_bad_json_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["publish", "data-arrived", "--data", "{not json"])
    assert result.exit_code == 2
    assert "not valid JSON" in result.output


def test_bad_extension_name_is_refused(runner: CliRunner, receiver) -> None:
    app, url = receiver
    result = runner.invoke(
        cli,
        [
            "publish",
            "data-arrived",
            "--data",
            json.dumps(VALID),
            "--broker",
            url,
            "-e",
            "Bad.Name=x",
        ],
    )
    assert result.exit_code == 2
    assert "Bad.Name" in result.output
    assert app.requests == []


def test_no_broker_running_is_a_clear_failure(runner: CliRunner) -> None:
    # Nothing listens on the discard port on loopback.
    result = runner.invoke(
        cli,
        [
            "publish",
            "data-arrived",
            "--data",
            json.dumps(VALID),
            "--broker",
            "http://127.0.0.1:9/troupe/default",
        ],
    )
    assert result.exit_code == 1
    assert "no broker answers" in result.output
    assert "Traceback" not in result.output


def test_no_broker_configured_says_how_to_start_one(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["publish", "data-arrived", "--data", json.dumps(VALID)])
    assert result.exit_code == 1
    assert "troupe up" in result.output


def test_a_refusing_broker_is_reported_with_its_status(runner: CliRunner, receiver) -> None:
    app, url = receiver
    app.status = 400
    result = runner.invoke(
        cli, ["publish", "data-arrived", "--data", json.dumps(VALID), "--broker", url]
    )
    assert result.exit_code == 1
    assert "(400)" in result.output
