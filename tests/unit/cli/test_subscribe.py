"""`troupe subscribe` / `unsubscribe` usage and failure paths (the real path is in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from troupe.cli import cli
from troupe.cli.subscribe import default_name
from troupe.knative import trigger_manifest


@pytest.fixture()
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no local runtime here
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return CliRunner()


def test_unknown_type_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["subscribe", "--type", "model-deploid", "--sink", "http://x/"])
    assert result.exit_code == 2 and "model-deploid" in result.output


def test_exactly_one_sink_is_required(runner: CliRunner) -> None:
    neither = runner.invoke(cli, ["subscribe", "--type", "model-deployed"])
    both = runner.invoke(cli, ["subscribe", "--type", "model-deployed", "--sink", "http://x/",
                               "--service", "mine"])
    assert neither.exit_code == both.exit_code == 2
    assert "exactly one of --sink URL or --service NAME" in both.output


def test_no_cluster_and_no_runtime_is_a_clear_failure(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["subscribe", "--type", "model-deployed", "--sink", "http://x/"])
    assert result.exit_code == 1
    assert "troupe up" in result.output and "Traceback" not in result.output


def test_an_unreachable_cluster_fails_fast_and_clearly(runner: CliRunner, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: c, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: c}}]\n"
    )
    result = runner.invoke(cli, ["unsubscribe", "anything", "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == 1
    assert "127.0.0.1:9" in result.output and "Traceback" not in result.output


def test_default_names_are_stable_dns_labels() -> None:
    name = default_name("model-deployed", "http://127.0.0.1:8080/hook")
    assert name == default_name("dev.troupe.model.deployed", "http://127.0.0.1:8080/hook")
    assert name.startswith("sub-model-deployed-") and len(name) <= 63


def test_an_invalid_filter_is_a_usage_error_with_a_caret_before_any_cluster(
        runner: CliRunner) -> None:
    result = runner.invoke(cli, ["subscribe", "--filter", "type = 'x' AND", "--sink",
                                 "http://x/"])
    assert result.exit_code == 2
    assert "invalid CESQL at column 15: expected an expression" in result.output
    assert "    type = 'x' AND\n                  ^" in result.output
    never = runner.invoke(cli, ["subscribe", "--filter", "LOWER(type)", "--sink", "http://x/"])
    assert never.exit_code == 2 and "String-valued" in never.output


def test_a_type_or_a_filter_is_required(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["subscribe", "--source", "/x", "--sink", "http://x/"])
    assert result.exit_code == 2
    assert "give --type TYPE, --filter CESQL, or both" in result.output


def test_default_names_tell_filters_for_one_sink_apart() -> None:
    sink = "http://127.0.0.1:8080/hook"
    by_filter = default_name(None, sink, "subject = 'a'")
    assert by_filter.startswith("sub-filter-")
    assert by_filter == default_name(None, sink, "subject = 'a'")
    assert by_filter != default_name(None, sink, "subject = 'b'")
    assert default_name("model-deployed", sink, "subject = 'a'") != default_name(
        "model-deployed", sink)


def test_a_cesql_trigger_manifest_uses_spec_filters_only() -> None:
    filters = [{"exact": {"type": "dev.troupe.model.deployed"}}, {"cesql": "subject = 'a'"}]
    manifest = trigger_manifest("troupe", "t", broker="default", filters=filters,
                                sink_uri="http://x/")
    assert manifest["spec"]["filters"] == filters
    assert "filter" not in manifest["spec"]
    with pytest.raises(ValueError, match="not both"):
        trigger_manifest("troupe", "t", broker="default", filters=filters,
                         filter_attributes={"type": "x"}, sink_uri="http://x/")
