"""Run the data plane alone: `python -m troupe.local.eventing.broker --eventing DIR [--port N]
[--spans FILE]`.

Uses KAFKA_BOOTSTRAP_SERVERS when set, otherwise starts Tansu. Prints the ingress URL on a
line of its own once every Trigger has joined its consumer group, and runs until SIGTERM.
With --spans, it records its spans (tracing.py) and appends them to FILE as `troupe up`
keeps them.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path

from troupe.local.conventions import DEFAULT_NAMESPACE
from troupe.local.errors import LocalError
from troupe.local.eventing.broker.dataplane import DataPlane
from troupe.local.eventing.broker.loader import load_eventing
from troupe.local.host.kafka import TansuBroker, bootstrap_servers_from_env
from troupe.local.observability.span_recorder import SpanRecorder
from troupe.local.observability.span_store import SpanStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m troupe.local.eventing.broker",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--eventing", type=Path, required=True,
                        help="folder of Broker/Trigger manifests (multi-document YAML)")
    parser.add_argument("--port", type=int, default=0, help="ingress port (default: a free one)")
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE,
                        help="namespace of resources that name none")
    parser.add_argument("--initial-offset", choices=("latest", "earliest"), default="latest",
                        help="where a Trigger's new consumer group starts")
    parser.add_argument("--workdir", type=Path, help="where Tansu's log goes")
    parser.add_argument("--spans", type=Path, help="trace the data plane into this span file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        brokers, triggers = load_eventing(args.eventing)
        with ExitStack() as stack:
            servers = bootstrap_servers_from_env()
            if servers is None:
                workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
                servers = stack.enter_context(TansuBroker(workdir)).bootstrap_servers
            recorder = None
            if args.spans is not None:
                store = SpanStore(args.spans).open()
                stack.callback(store.close)
                recorder = SpanRecorder(store, "troupe-broker").start()
                stack.callback(recorder.close)
            plane = DataPlane(servers, port=args.port, default_namespace=args.namespace,
                              initial_offset=args.initial_offset, spans=recorder)
            for broker in brokers:
                plane.add_broker(broker)
            for trigger in triggers:
                plane.add_trigger(trigger)
            stack.enter_context(plane)
            if not plane.wait_ready(timeout=60):
                print("warning: some triggers have not joined their consumer group yet",
                      file=sys.stderr)
            print(plane.ingress_url, flush=True)
            stop.wait()
    except LocalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
