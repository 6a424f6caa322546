"""Who may use the local API, checked before a request is read any further.

The API starts code (a Service runs a function folder) and decides where events go (a
Trigger's subscriber), so it is for the user who ran `troupe up` alone:

1. Host (403). Only loopback names, as `kubectl proxy` accepts by default: a web page
   that rebinds its own name to 127.0.0.1 sends its name, and is refused.
2. A bearer token (401). `troupe up` makes a new one for each run and writes it into the
   kubeconfig, which only its owner may read; kubectl and the `kubernetes` client send
   it from there. Compared in constant time.
3. Writes in JSON (415). POST, PUT and PATCH must say they carry JSON or a JSON patch. A
   page may POST `text/plain` to any address without asking the browser's leave (a
   "simple" cross-site request); any other type needs a CORS preflight, and the API
   never grants one: OPTIONS is not served and no `Access-Control-*` header is ever sent.
   A write without a Content-Type is JSON, as the API server takes it (the `kubernetes`
   client sends none when it creates a custom object); a page can send one like that,
   but never with the token, which only a preflight could have let it add.

Each refusal is a Kubernetes `Status`, as the API server answers.
"""

from __future__ import annotations

import hmac
from typing import Final

from werkzeug.wrappers import Request

from troupe.local.controlplane.apiserver import RequestCheck
from troupe.local.controlplane.status import ApiError
from troupe.local.host.host_header import foreign_host_message, is_loopback_host

# JSON, and the patch types the API applies (server-side apply is not served).
WRITE_TYPES: Final = frozenset({"application/json", "application/json-patch+json",
                                "application/merge-patch+json",
                                "application/strategic-merge-patch+json"})
_WRITES: Final = frozenset({"POST", "PUT", "PATCH"})
_PROTOBUF: Final = "application/vnd.kubernetes.protobuf"


def access_checks(token: str) -> tuple[RequestCheck, ...]:
    """The checks, in the order they run, for an API whose clients hold `token`."""
    expected = f"Bearer {token}".encode()

    def bearer_token(request: Request) -> None:
        given = request.headers.get("Authorization", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            raise ApiError(401, "Unauthorized", "Unauthorized: send the token of the "
                           "kubeconfig `troupe up` wrote (.troupe/kubeconfig) as "
                           "`Authorization: Bearer <token>`; kubectl and the kubernetes "
                           "client do so with that kubeconfig")
    return (loopback_host, bearer_token, json_writes)


def loopback_host(request: Request) -> None:
    host = request.headers.get("Host")
    if not is_loopback_host(host):
        raise ApiError(403, "Forbidden", foreign_host_message(host))


def json_writes(request: Request) -> None:
    if request.method == "OPTIONS":  # a CORS preflight: never granted
        raise ApiError(405, "MethodNotAllowed", "OPTIONS is not served: the API allows no "
                       "cross-origin requests")
    if request.method not in _WRITES:
        return
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not content_type or content_type in WRITE_TYPES:
        return
    hint = (" (`kubectl create <kind>` sends protobuf: `kubectl apply -f` a manifest "
            "instead)" if content_type.startswith(_PROTOBUF) else "")
    raise ApiError(415, "UnsupportedMediaType", f"the body's content type "
                   f"{content_type!r} is not accepted for {request.method}: send "
                   f"application/json, or for PATCH a JSON merge, strategic merge or JSON "
                   f"patch{hint}")
