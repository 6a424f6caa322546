"""What the guards against abuse cost: the predictor's counted parse, and the shared claim.

Parsing: the predictor counts instances while it parses (functions/predictor/
predictor_body.py). Figures, each against json.loads of the same body in the same run:
- a valid 1,000-instance body, which takes the pre-check and json.loads;
- a 1 MiB body of 262,144 one-value instances, which the counted parse stops at the
  1,001st (json.loads would build every one of them);
- a valid 1,000-instance body with a `[` in every text value, which takes the slow,
  counted path: the price of a false alarm of the pre-check.

The reply cache: a delivery now claims its event (create_json) and then records the
answer (update_json); before, it read the cache and wrote the answer. Per event, on a
file:// store, against that read-then-write in the same run.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from troupe.store import EventRef, Reply, Store, entry_key

from bench.report import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions" / "predictor"))
from predictor_body import TooManyInstancesError, parse_predict_body

MAX_INSTANCES = 1000
EVENTS = 300


def _best_of(repeats: int, work: Callable[[], object]) -> float:
    """Seconds of the fastest of `repeats` runs: the least disturbed by the machine."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def _counted(body: bytes) -> Callable[[], object]:
    def parse() -> object:
        try:
            return parse_predict_body(body, MAX_INSTANCES)
        except TooManyInstancesError:
            return None
    return parse


def _parse_figures() -> list[Figure]:
    valid = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]] * MAX_INSTANCES}).encode()
    flood = b'{"instances": [' + b",".join([b"[0]"] * 262_144) + b"]}"
    texts = json.dumps({"instances": [["a[1]", "b[2]", 1.4, 0.2]] * MAX_INSTANCES}).encode()
    figures = []
    for name, body, repeats in (("valid body, 1,000 instances", valid, 50),
                                ("1 MiB of 262,144 instances", flood, 5),
                                ("1,000 instances, '[' in text", texts, 20)):
        baseline = _best_of(repeats, lambda body=body: json.loads(body))
        value = _best_of(repeats, _counted(body))
        figures.append(Figure("guards", f"counted parse: {name}", value * 1000, "ms",
                              "json.loads", baseline * 1000))
    return figures


def _claim_figure(root: Path) -> Figure:
    store = Store((root / "store").as_uri())

    def claimed() -> None:
        event = EventRef("bench", "/bench", uuid.uuid4().hex)
        now = time.time()
        store.replies.claim(event, owner="o", lease_seconds=30, now=now)
        store.replies.answer(event, Reply(202), owner="o", ttl_seconds=3600, now=now)

    def read_then_write() -> None:  # the cache as it was: a miss, then the answer
        key = entry_key("before", uuid.uuid4().hex)
        store.read_json(key, None)
        store.write_json(key, {"status": 202, "headers": {}, "body": ""})

    baseline = _best_of(3, lambda: [read_then_write() for _ in range(EVENTS)]) / EVENTS
    value = _best_of(3, lambda: [claimed() for _ in range(EVENTS)]) / EVENTS
    return Figure("guards", "reply cache per event: claim, then answer", value * 1000, "ms",
                  "read, then write", baseline * 1000)


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory() as folder:
        return [*_parse_figures(), _claim_figure(Path(folder))]


if __name__ == "__main__":
    from bench.report import render

    print(render(run()))
