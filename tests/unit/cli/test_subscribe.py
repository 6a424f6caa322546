"""`troupe subscribe` / `unsubscribe` usage and failure paths (the real path is in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from troupe.cli import cli
from troupe.cli.subscribe import default_name


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
