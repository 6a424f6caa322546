"""gunicorn as a forked instance runs it: the `gunicorn` command's own application, with
its settings and argument parser made once, in the template, instead of in every instance.

Making gunicorn's 120 settings and adding each to an argparse parser is pure Python that a
fresh `gunicorn` does at every start; in a forked child it costs more (every object it
touches is a page the child must copy), about 20 ms of a 150 ms cold start. The template
makes one PrebuiltConfig before it forks; each instance gets its own copy of it with the
fork, parses its own command line with the prebuilt parser, exactly as `gunicorn` would,
and changes only its own copy. Imported by the template after it has preloaded gunicorn.

A forked instance is also one process, where `gunicorn --workers 1` is two: its arbiter
sets up as gunicorn's does (the logger, --env, --preload importing `main:app`, the hooks),
then runs its one worker in its own process instead of forking it. The template already
gave the instance the fresh process of its own that gunicorn forks a worker to get, and
the second fork costs a cold start more here than elsewhere: the worker is a copy of a
process that shares hundreds of MiB with the template, and it copies each page it writes
a second time (15-25 ms of a 90-175 ms cold start on 2 cores).

What the master did and who does it now. A worker that exits: the pool replaces the
instance, as Kubernetes restarts a container. A request that runs too long: the router
ends it at the revision's timeoutSeconds, as Knative's queue-proxy does (gunicorn's
--timeout never did that for gthread workers, whose loop goes on while requests run). A
worker whose main loop itself stops for --timeout seconds: nothing kills it until it is
scaled down or the runtime stops, as a pod without a liveness probe. A fresh process keeps
gunicorn's master, as it runs in a pod.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gunicorn import sock
from gunicorn.app.wsgiapp import WSGIApplication
from gunicorn.arbiter import Arbiter
from gunicorn.config import Config
from gunicorn.errors import AppImportError

# What gunicorn's own entry point (gunicorn.app.wsgiapp.run) passes.
_USAGE = "%(prog)s [OPTIONS] [APP_MODULE]"
_PROG = "gunicorn"


class PrebuiltConfig(Config):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's Config, whose argument parser is built once and then reused: argparse
    parsers keep no state between parse_args calls."""

    def __init__(self) -> None:
        super().__init__(_USAGE, prog=_PROG)
        self._parser: argparse.ArgumentParser = super().parser()

    def parser(self) -> argparse.ArgumentParser:
        return self._parser


class _WorkerInProcessArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's arbiter, set up as gunicorn's is (Arbiter.__init__ and start), that then
    runs its one worker in this process: what Arbiter.spawn_worker does in the child it
    forks, without the fork. The worker's parent is this process' parent, the template:
    gunicorn's worker leaves its loop when its parent changes, so an instance whose
    template is gone stops, as a worker whose master is gone does."""

    def run(self) -> None:
        self.start()
        self.worker_age += 1
        worker = self.worker_class(self.worker_age, os.getppid(), self.LISTENERS, self.app,
                                   self.timeout / 2.0, self.cfg, self.log)
        self.cfg.pre_fork(self, worker)
        worker.pid = self.pid
        try:
            if self.cfg.reuse_port:  # as spawn_worker: each worker binds its own socket
                worker.sockets = sock.create_sockets(self.cfg, self.log)
            self.cfg.post_fork(self, worker)
            worker.init_process()  # serves until a signal ends it, by SystemExit
            sys.exit(0)
        except SystemExit:
            raise
        except AppImportError as error:
            print(error, file=sys.stderr, flush=True)
            sys.exit(self.APP_LOAD_ERROR)
        except Exception as error:
            self.log.exception("Exception in worker process")
            print(error, file=sys.stderr, flush=True)
            sys.exit(-1 if worker.booted else self.WORKER_BOOT_ERROR)
        finally:
            worker.tmp.close()
            self.cfg.worker_exit(self, worker)


class _InstanceApplication(WSGIApplication):  # type: ignore[misc]
    """`gunicorn <arguments>`, starting from the prebuilt settings instead of new ones, and
    serving in one process."""

    def __init__(self, config: PrebuiltConfig) -> None:
        self._prebuilt = config
        super().__init__(_USAGE, prog=_PROG)

    def load_default_config(self) -> None:
        self.cfg = self._prebuilt
        # Config keeps the environment it was made in, for GUNICORN_CMD_ARGS and re-exec:
        # the instance's, not the template's.
        self.cfg.env_orig = os.environ.copy()

    def run(self) -> None:
        cfg = self.cfg
        if (cfg.workers != 1 or cfg.print_config or cfg.check_config or cfg.spew
                or cfg.daemon or cfg.pythonpath):
            # Not what `troupe up` asks for, but GUNICORN_CMD_ARGS in a revision's env may
            # add it: gunicorn's own run, with its master, does it as `gunicorn` would.
            super().run()
            return
        try:  # the rest of Application.run, with the arbiter above
            _WorkerInProcessArbiter(self).run()
        except RuntimeError as error:  # as BaseApplication.run
            print(f"\nError: {error}\n", file=sys.stderr, flush=True)
            sys.exit(1)


def run(config: PrebuiltConfig, arguments: Sequence[str]) -> None:
    """What `gunicorn <arguments>` does; returns only by SystemExit, as gunicorn does."""
    sys.argv = [_PROG, *arguments]
    _InstanceApplication(config).run()
