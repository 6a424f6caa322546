"""One data-arrived through to model-deployed is one trace, with a span per hop in order,
and `troupe timeline` shows those hops from the same spans."""

from __future__ import annotations

import itertools
import json

import pytest
from click.testing import CliRunner
from troupe.cli import cli
from troupe.traces import TRACE_FILE, Role, hops_of

from .conftest import RUN_STEPS, DemoRuntime

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]


def test_a_run_is_one_trace_with_a_span_per_hop_in_order(demo_runtime: DemoRuntime) -> None:
    spans = demo_runtime.runtime.spans.run(demo_runtime.runid)

    assert len({span.trace_id for span in spans}) == 1
    handlers = sorted((s for s in spans if s.role == Role.HANDLER), key=lambda s: s.start_ns)
    assert [span.service for span in handlers] == list(RUN_STEPS)
    by_id = {span.span_id: span for span in spans}
    for earlier, later in itertools.pairwise(handlers):
        # Each hop descends from the one before it: its reply carried the context on.
        ancestor = by_id.get(later.parent_id or "")
        while ancestor is not None and ancestor.span_id != earlier.span_id:
            ancestor = by_id.get(ancestor.parent_id or "")
        assert ancestor is earlier, f"{later.service} is not under {earlier.service}"
        assert later.start_ns >= earlier.end_ns
    assert [hop.service for hop in hops_of(spans)] == list(RUN_STEPS)


def test_the_timeline_shows_each_hop_from_the_trace(demo_runtime: DemoRuntime) -> None:
    runtime = demo_runtime.runtime
    info = runtime.data_plane_info()
    result = CliRunner().invoke(cli, [
        "timeline", demo_runtime.runid, "--json", "--spans",
        str(runtime.options.workdir / TRACE_FILE),
        "--bootstrap-servers", info["bootstrap_servers"], "--topic", info["topic"]])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    hops = shown["hops"]
    assert [hop["service"] for hop in hops] == list(RUN_STEPS)
    assert len(shown["traces"]) == 1
    assert all(hop["handler_s"] > 0 for hop in hops)
    assert {"queue_wait_s", "cold_start_s", "attempts"} <= set(hops[0])
