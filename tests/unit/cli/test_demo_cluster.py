"""`troupe demo --kubeconfig`: the closed loop against a Knative cluster, configured by
flags instead of by the local runtime. What it needs of the cluster is checked first."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from troupe.cli import cli
from troupe.cli.demo import DEFAULT_TOPIC, _cluster_info


def test_against_a_cluster_the_missing_endpoints_are_named(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")

    result = CliRunner().invoke(cli, ["demo", "--kubeconfig", str(kubeconfig),
                                      "--broker", "http://127.0.0.1:8080/troupe/default"])

    assert result.exit_code == 2
    assert "--bootstrap-servers, --store-url" in result.output
    assert "--broker," not in result.output


def test_the_cluster_is_described_as_the_local_runtime_describes_itself(
        tmp_path: Path) -> None:
    info = _cluster_info(tmp_path / "kubeconfig", "kind-troupe",
                         "http://127.0.0.1:8080/troupe/default", "127.0.0.1:9092",
                         DEFAULT_TOPIC, "s3://models/troupe", None)

    assert info == {"kubeconfig": str(tmp_path / "kubeconfig"), "context": "kind-troupe",
                    "broker_url": "http://127.0.0.1:8080/troupe/default",
                    "bootstrap_servers": "127.0.0.1:9092",
                    "topic": "knative-broker-troupe-default",
                    "store_url": "s3://models/troupe", "predictor_url": None}
