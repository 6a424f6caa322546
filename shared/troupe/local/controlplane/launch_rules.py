"""What a Service may start on this machine: a function folder of the project, with an
environment that configures the function and does not steer the process running it.

A Service's container becomes `gunicorn --chdir functions/<image> main:app`, run as the
user who ran `troupe up`, with the container's `env` and `envFrom` in its environment. On
a cluster the image is one skaffold built and the pod is fenced in; here nothing fences
it, so:

- `image` must name a function folder: a DNS label (RFC 1123, as the folder names and
  skaffold's artifacts are), so it is always a folder directly inside the project's
  `functions/`. An absolute path, `..` or a slash would run some other folder's main.py.
- Refused environment names (the rule):
  * names that steer the interpreter, the dynamic loader or the server, whatever the
    function: `LD_*` (LD_PRELOAD loads any library), `PYTHON*` (PYTHONPATH,
    PYTHONSTARTUP, PYTHONHOME...), `GUNICORN_*` (GUNICORN_CMD_ARGS takes --config, a
    Python file);
  * the runtime's own wiring of each instance, which Knative reserves too: PORT,
    K_SERVICE, K_CONFIGURATION, K_REVISION;
  * the kubeconfig a function talks to the API with, KUBECONFIG and TROUPE_KUBECONFIG:
    the runtime hands every function its own (with this run's token), and a kubeconfig
    can name a command to run for credentials.
  Every other TROUPE_* name is the function's configuration, which the manifests set on
  purpose (TROUPE_DEPLOY_MODELS, TROUPE_TRAIN_ON_ARRIVAL, the TROUPE_MAX_* limits...).
  TROUPE_STORE_URL and TROUPE_PROMETHEUS_URL are set by the runtime for each instance as
  well; the cluster's values in the manifests' ConfigMap are accepted and the runtime's
  win, so that the same manifests run in both places.
"""

from __future__ import annotations

import re
from typing import Final

from troupe.local.errors import InvalidFieldError

_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_LABEL_MAX: Final = 63
STEERING_PREFIXES: Final = ("LD_", "PYTHON", "GUNICORN_")
RESERVED_NAMES: Final = frozenset({"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION",
                                   "KUBECONFIG", "TROUPE_KUBECONFIG"})


def check_image(image: object, field: str) -> None:
    """InvalidFieldError unless `image` names a function folder."""
    if not isinstance(image, str) or not image:
        raise InvalidFieldError(field, "missing: name the function folder, e.g. image: ingest")
    if len(image) > _DNS_LABEL_MAX or not _DNS_LABEL.match(image):
        raise InvalidFieldError(field, f"{image!r} is not a function folder's name: locally "
                                "`image` names a folder of the project's functions/ (a "
                                "lowercase DNS label such as `ingest`), never a path")


def refused_variable(name: str) -> str | None:
    """Why a container may not set the environment variable `name`, or None."""
    if name in RESERVED_NAMES:
        return (f"{name} is set by the runtime for each instance and may not be set by a "
                "Service")
    if name.startswith(STEERING_PREFIXES):
        return (f"{name} steers the interpreter, the loader or the server rather than the "
                f"function: names starting with {', '.join(STEERING_PREFIXES)} may not be "
                "set by a Service")
    return None


def check_variable(name: str, field: str) -> None:
    why = refused_variable(name)
    if why is not None:
        raise InvalidFieldError(field, why)


def check_prefix(prefix: str, field: str) -> None:
    """An envFrom prefix that would make every name it brings a refused one."""
    if prefix.startswith(STEERING_PREFIXES):
        raise InvalidFieldError(field, f"{prefix!r} makes names that steer the interpreter, "
                                f"the loader or the server ({', '.join(STEERING_PREFIXES)})")
