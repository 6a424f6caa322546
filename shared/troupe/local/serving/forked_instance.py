"""What a process forked from the instance template does to become a function instance:
a session, output and environment of its own, fresh random state, the native thread pools
a fresh process would have, then gunicorn; and an exit without the interpreter's teardown.

Why each step is needed is the template's docstring (template.py); this module is the
child's side of it, run in the child only.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from troupe.local.serving.forked_gunicorn import PrebuiltConfig
    from troupe.local.serving.template import InstanceRequest


@dataclass(frozen=True)
class Prepared:
    """What the template makes once, after preloading, and every instance inherits."""

    set_by_imports: Mapping[str, str]  # what the preloaded modules put in the environment
    pools: Any  # native_thread_pools(): threadpoolctl's controller, or None
    gunicorn_config: PrebuiltConfig


def become_instance(request: InstanceRequest, prepared: Prepared) -> NoReturn:
    """In the forked child: set it up as a process of its own, then serve until stopped."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the template's handler reaps instances
    _redirect_output(request.log)
    os.environ.clear()
    os.environ.update({**prepared.set_by_imports, **request.env})
    _reseed()
    if prepared.pools is not None:
        _size_native_thread_pools(prepared.pools, request.env)
    for path in Path(request.folder).iterdir():
        if path.suffix == ".py" or (path / "__init__.py").is_file():
            sys.modules.pop(path.stem, None)
    from troupe.local.serving.forked_gunicorn import run

    code: int | str | None = 0
    try:
        # Returns only by SystemExit, when gunicorn stops.
        run(prepared.gunicorn_config, request.gunicorn_arguments)
    except SystemExit as exit_:
        code = exit_.code
    _exit_now(code)


def _exit_now(code: int | str | None) -> NoReturn:
    """Exit as a fresh process does, less the interpreter's teardown. The exit handlers run
    (a function's span processor exports its last spans in one, logging flushes in
    another). The teardown does not: it would release every object inherited from the
    template, writing to (and so copying) most of its pages: 0.7 s and hundreds of MiB for
    each instance scaled down, which the instances still starting pay for."""
    if isinstance(code, str):
        print(code, file=sys.stderr)
    # atexit has no public way to run its handlers short of a full exit; this is the
    # function the interpreter itself calls at exit, before its teardown.
    atexit._run_exitfuncs()
    logging.shutdown()  # in case a handler above logged
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


def _redirect_output(log: str) -> None:
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(null)
    os.close(descriptor)


def _reseed() -> None:
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def native_thread_pools() -> Any:
    """threadpoolctl's handle on the native thread pools loaded here (OpenBLAS, OpenMP),
    found once in the template rather than in every instance; None without them."""
    if not any(name in sys.modules for name in ("numpy", "scipy", "sklearn")):
        return None
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # scikit-learn brings it; numpy alone keeps one thread
        return None
    return ThreadpoolController()


def _size_native_thread_pools(pools: Any, env: Mapping[str, str]) -> None:
    """The thread counts OpenBLAS and OpenMP give a fresh process: from the environment,
    else one per core this process may run on."""
    cores = len(os.sched_getaffinity(0))

    def count(*names: str) -> int:
        for name in names:
            with contextlib.suppress(KeyError, ValueError):
                return max(1, int(env[name]))
        return cores

    pools.limit(limits={"blas": count("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "OMP_NUM_THREADS"),
                        "openmp": count("OMP_NUM_THREADS")})
    # OpenBLAS starts its new threads as soon as its pool grows, and each spins for about
    # 0.1 s waiting for work: beside the first request on 2 cores, that took 70 ms of a
    # 150-250 ms cold start. Stopped now, they start again at the first call that needs
    # them, with the size just set. This is what a fork does to them (OpenBLAS registers
    # this very function as its pthread_atfork handler), so a process forked from a sized
    # one, as a gunicorn worker from its master, starts the same way.
    for pool in pools.lib_controllers:
        if pool.internal_api == "openblas":
            with contextlib.suppress(AttributeError):  # a build without the threaded server
                pool.dynlib.blas_thread_shutdown_()
