"""gunicorn as a forked instance runs it: the `gunicorn` command's own application, with
its settings and argument parser made once, in the template, instead of in every instance.

Making gunicorn's 120 settings and adding each to an argparse parser is pure Python that a
fresh `gunicorn` does at every start; in a forked child it costs more (every object it
touches is a page the child must copy), about 20 ms of a 150 ms cold start. The template
makes one PrebuiltConfig before it forks; each instance gets its own copy of it with the
fork, parses its own command line with the prebuilt parser, exactly as `gunicorn` would,
and changes only its own copy. Imported by the template after it has preloaded gunicorn.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from gunicorn.app.wsgiapp import WSGIApplication
from gunicorn.config import Config

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


class _InstanceApplication(WSGIApplication):  # type: ignore[misc]
    """`gunicorn <arguments>`, starting from the prebuilt settings instead of new ones."""

    def __init__(self, config: PrebuiltConfig) -> None:
        self._prebuilt = config
        super().__init__(_USAGE, prog=_PROG)

    def load_default_config(self) -> None:
        self.cfg = self._prebuilt
        # Config keeps the environment it was made in, for GUNICORN_CMD_ARGS and re-exec:
        # the instance's, not the template's.
        self.cfg.env_orig = os.environ.copy()


def run(config: PrebuiltConfig, arguments: Sequence[str]) -> None:
    """What `gunicorn <arguments>` does; returns only by SystemExit, as gunicorn does."""
    sys.argv = [_PROG, *arguments]
    _InstanceApplication(config).run()
