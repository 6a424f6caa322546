"""The kubeconfig of the local API: where it listens, and the token of this run.

kubectl, the `kubernetes` client, the deployer and `troupe subscribe` reach the local
runtime through this file as they reach a cluster through theirs: an https:// server, the
certificate authority that signed its certificate (certificates.py), and a bearer token.
The token is new for each run (`new_token`), so a token read from an earlier run's file is
worth nothing, and the file is owner-only from its first byte (private_files.py).
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Final

import yaml

from troupe.local.host.private_files import write_owner_only

KUBE_CONTEXT: Final = "troupe-local"
# 32 random bytes: as strong as the API server's own service account tokens need be.
_TOKEN_BYTES: Final = 32


def new_token() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)


def write_kubeconfig(path: Path, server: str, token: str, namespace: str,
                     ca_pem: bytes) -> None:
    """`server` is https://...: kubectl sends the token over TLS only, checking the
    server's certificate against `ca_pem`, the run's own authority."""
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": KUBE_CONTEXT, "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": KUBE_CONTEXT, "user": {"token": token}}],
        "contexts": [{"name": KUBE_CONTEXT, "context": {
            "cluster": KUBE_CONTEXT, "user": KUBE_CONTEXT, "namespace": namespace}}],
        "current-context": KUBE_CONTEXT,
    }
    write_owner_only(path, yaml.safe_dump(config, sort_keys=False).encode())
