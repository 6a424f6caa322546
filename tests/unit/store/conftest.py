"""Stores to test against: a file:// store in a temporary folder, and an s3:// store on a
real moto S3 server listening on loopback (one server per session, one bucket per test)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from troupe.store import Store


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's server, answering one request at a time. S3 makes a conditional PUT atomic;
    moto checks If-Match and then stores the object, so two PUTs with the same ETag on two
    of its threads could both pass the check: a lost update that S3 would refuse (seen
    once under load, 31 increments of 32). The concurrency tests are about our
    compare-and-swap between requests, which interleave as before."""
    pytest.importorskip("moto.server")
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    moto = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with one_at_a_time:
            return list(moto(environ, start_response))

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture()
def s3_options(s3_endpoint: str) -> dict[str, Any]:
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }


@pytest.fixture()
def s3_bucket(s3_options: dict[str, Any]) -> str:
    import boto3

    bucket = f"troupe-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_options["client_kwargs"]["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture()
def s3_store(s3_bucket: str, s3_options: dict[str, Any]) -> Store:
    return Store(f"s3://{s3_bucket}/lab/store", s3_options)


@pytest.fixture()
def file_store(tmp_path: Any) -> Store:
    return Store(f"file://{tmp_path}/store")


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each test using it runs once per backend."""
    fixture = "file_store" if request.param == "file" else "s3_store"
    value: Store = request.getfixturevalue(fixture)
    return value
