"""`troupe capacity model` through click's runner, against Erlang C cases worked by hand."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner
from troupe.cli import cli


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["capacity", "model", *args])
    return result.exit_code, result.output


def model_json(*args: str) -> dict[str, float | int | None]:
    code, output = run(*args, "--json")
    assert code == 0, output
    answer: dict[str, float | int | None] = json.loads(output)
    assert set(answer) == {"utilization", "p_wait", "mean_wait_s", "p95_wait_s",
                           "servers_for_slo"}
    return answer


def test_two_servers_worked_by_hand() -> None:
    # a = 8 * 0.2 = 1.6, rho = 0.8. For c = 2, C = 2 rho^2 / (1 + rho) = 1.28 / 1.8.
    # Wq = C / (c mu - lambda) = C / (10 - 8); P(W > t) = C e^{-2t}, so p95 = ln(C/0.05)/2.
    # c = 3: sum_{k<3} a^k/k! = 3.88, a^3/3! * 3/(3 - a) = 1.46286, C = 0.27380 and
    # p95 = ln(C/0.05) / (15 - 8) = 0.243 s <= 300 ms, so 3 servers meet 300ms@p95.
    c2 = 1.28 / 1.8
    answer = model_json("--rate", "8", "--service-time", "200ms", "--servers", "2",
                        "--slo", "300ms@p95")
    assert answer["utilization"] == pytest.approx(0.8)
    assert answer["p_wait"] == pytest.approx(c2)
    assert answer["mean_wait_s"] == pytest.approx(c2 / 2)
    assert answer["p95_wait_s"] == pytest.approx(math.log(c2 / 0.05) / 2)
    assert answer["servers_for_slo"] == 3


def test_one_server_is_mm1() -> None:
    # M/M/1 with rho = 0.4: P(wait) = rho, Wq = rho s / (1 - rho), p95 = ln(rho/0.05)/(mu - lambda).
    answer = model_json("--rate", "4", "--service-time", "100ms", "--servers", "1")
    assert answer["p_wait"] == pytest.approx(0.4)
    assert answer["mean_wait_s"] == pytest.approx(0.4 * 0.1 / 0.6)
    assert answer["p95_wait_s"] == pytest.approx(math.log(8) / 6)
    assert answer["servers_for_slo"] is None  # no --slo


def test_constant_service_times_halve_the_wait() -> None:
    # M/D/1 (--scv 0): Pollaczek-Khinchine gives Wq = rho s / (2 (1 - rho)) = 0.05 s.
    answer = model_json("--rate", "5", "--service-time", "100ms", "--servers", "1",
                        "--scv", "0")
    assert answer["mean_wait_s"] == pytest.approx(0.05)


def test_a_slo_met_at_once_needs_no_more_servers() -> None:
    # 8 servers for 1.6 Erlangs: P(wait) is far below 5%, so the p95 wait is 0.
    answer = model_json("--rate", "8", "--service-time", "200ms", "--servers", "8",
                        "--slo", "10ms@p95")
    assert answer["p95_wait_s"] == 0
    assert answer["servers_for_slo"] is not None and answer["servers_for_slo"] <= 8


def test_prints_a_readable_summary() -> None:
    code, output = run("--rate", "8", "--service-time", "200ms", "--servers", "2",
                       "--slo", "300ms@p95")
    assert code == 0, output
    assert "M/M/c (Erlang C)" in output
    assert "80.0%" in output and "71.1%" in output  # utilisation, P(wait)
    assert "1.33 s" in output  # the p95 wait
    assert "servers for 300ms@p95  3" in output


@pytest.mark.parametrize(("flags", "problem"), [
    (["--slo", "5"], "'5' is not a wait SLO"),
    (["--slo", "200ms@p150"], "not a percentile"),
    (["--slo", "soon@p95"], "not a duration"),
    (["--rate", "0"], "'0' must be a finite number > 0"),
    (["--rate", "-3"], "must be a finite number > 0"),
    (["--rate", "nan"], "must be a finite number > 0"),
    (["--service-time", "0.2"], "give one with a unit"),
    (["--service-time", "0s"], "must be longer than 0"),
    (["--scv", "-1"], "must be a finite number >= 0"),
    (["--servers", "0"], "--servers"),
])
def test_bad_flags_are_usage_errors(flags: list[str], problem: str) -> None:
    base = {"--rate": "8", "--service-time": "200ms", "--servers": "2"}
    for name, value in zip(flags[::2], flags[1::2], strict=True):
        base[name] = value
    code, output = run(*[item for pair in base.items() for item in pair])
    assert code == 2, output
    assert problem in output


def test_an_unstable_queue_is_refused_with_what_would_do() -> None:
    # 12 requests/s of 200 ms is 2.4 Erlangs: 2 servers would be at rho = 1.2.
    code, output = run("--rate", "12", "--service-time", "200ms", "--servers", "2",
                       "--slo", "300ms@p95", "--json")
    assert code == 2
    assert "rho = 1.2 >= 1" in output
    assert "--servers 3 or more" in output
    assert not output.lstrip().startswith("{")  # no number is printed for it


def test_exactly_full_servers_are_refused_too() -> None:
    code, output = run("--rate", "10", "--service-time", "200ms", "--servers", "2")
    assert code == 2 and "rho = 1 >= 1" in output
