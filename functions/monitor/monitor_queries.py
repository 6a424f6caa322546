"""What the monitor asks Prometheus, per model version, over a window.

The predictor exports counters and a latency histogram labelled `model` and
`model_version`; these queries turn them into accuracy (correct / labeled feedback),
p95 latency and the highest feature PSI over a window, and read the raw counters that
the statistical tests difference tick by tick (monitor_detection.py). (Unique module
name: tests import several function folders in one process.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

# A Prometheus duration: 30s, 5m, 1h30m, ...
DURATION: Final = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


class PrometheusUnavailableError(Exception):
    """Prometheus did not answer (connection refused, timeout, 5xx): try again later."""


class PrometheusQueryError(Exception):
    """Prometheus refused a query (4xx): retrying the same query will not help."""


@dataclass(frozen=True)
class VersionMetrics:
    """What was seen for one model version in the window; None where data was too thin."""

    version: str
    labeled: float = 0.0
    correct: float = 0.0
    predictions: float = 0.0
    latency_p95: float | None = None
    max_psi: float | None = None
    psi_feature: str | None = None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labeled if self.labeled > 0 else None


@dataclass(frozen=True)
class CounterSample:
    """The current value of one counter series (one predictor process's)."""

    metric: str
    labels: dict[str, str]
    value: float


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class ServingMetricsQuery:
    def __init__(self, url: str, *, timeout: float) -> None:
        # No client-side retries: the broker redelivers the tick, so a dead Prometheus
        # costs one fast failure instead of a backoff inside the request.
        self._client = PrometheusConnect(url=url, retry=Retry(total=0), timeout=timeout)
        self.url = url

    def _vector(self, promql: str) -> list[dict[str, Any]]:
        try:
            result: list[dict[str, Any]] = self._client.custom_query(promql)
        except requests.RequestException as error:
            raise PrometheusUnavailableError(
                f"Prometheus at {self.url} did not answer: {error}"
            ) from None
        except PrometheusApiClientException as error:
            if "HTTP Status Code 4" in str(error):
                raise PrometheusQueryError(f"Prometheus refused {promql!r}: {error}") from None
            raise PrometheusUnavailableError(
                f"Prometheus at {self.url} failed: {error}"
            ) from None
        return result

    def _by_version(self, promql: str) -> dict[str, float]:
        values: dict[str, float] = {}
        for sample in self._vector(promql):
            version = sample["metric"].get("model_version")
            value = float(sample["value"][1])
            if version and not math.isnan(value):
                values[version] = value
        return values

    def per_version(self, model: str, window: str) -> dict[str, VersionMetrics]:
        """Accuracy inputs, p95 latency and max PSI for every version with data."""
        if not DURATION.match(window):
            raise PrometheusQueryError(f"window {window!r} is not a Prometheus duration (5m, 1h)")
        selector = f'{{model="{_label_value(model)}"}}'

        def increase(metric: str) -> str:
            return f"sum by (model_version) (increase({metric}{selector}[{window}]))"

        labeled = self._by_version(increase("troupe_feedback_labeled_total"))
        correct = self._by_version(increase("troupe_feedback_correct_total"))
        predictions = self._by_version(increase("troupe_prediction_latency_seconds_count"))
        p95 = self._by_version(
            "histogram_quantile(0.95, sum by (model_version, le) "
            f"(rate(troupe_prediction_latency_seconds_bucket{selector}[{window}])))"
        )
        worst_psi: dict[str, tuple[float, str]] = {}
        # PSI is already a sliding-window statistic in each predictor instance; the current
        # value (averaged over instances) follows the drift as it comes and goes, where a
        # max over the window would keep reporting a spike, or a drift already corrected.
        psi_now = f"avg by (model_version, feature) (troupe_feature_psi{selector})"
        for sample in self._vector(psi_now):
            version = sample["metric"].get("model_version")
            value = float(sample["value"][1])
            if version and not math.isnan(value) and value > worst_psi.get(version, (-1.0, ""))[0]:
                worst_psi[version] = (value, sample["metric"].get("feature", ""))
        versions = set(labeled) | set(predictions) | set(worst_psi)
        return {
            version: VersionMetrics(
                version=version,
                labeled=labeled.get(version, 0.0),
                correct=correct.get(version, 0.0),
                predictions=predictions.get(version, 0.0),
                latency_p95=p95.get(version),
                max_psi=worst_psi[version][0] if version in worst_psi else None,
                psi_feature=worst_psi[version][1] if version in worst_psi else None,
            )
            for version in sorted(versions)
        }

    def counters(self, model: str, metrics: tuple[str, ...]) -> list[CounterSample]:
        """The current value of every series of `metrics` for `model`, per process."""
        selector = f'{{model="{_label_value(model)}"}}'
        found = []
        for metric in metrics:
            for sample in self._vector(f"{metric}{selector}"):
                value = float(sample["value"][1])
                if not math.isnan(value):
                    labels = {str(k): str(v) for k, v in sample["metric"].items()
                              if k != "__name__"}
                    found.append(CounterSample(metric, labels, value))
        return found
