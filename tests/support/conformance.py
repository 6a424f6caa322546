"""Reading the CloudEvents conformance data (../shared/conformance) into HTTP requests.

Shared by the function contract tests and the codec tests, which hold different code to
the same cases.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from cloudevents.core.formats.json import JSONFormat

STRUCTURED = "application/cloudevents+json"
# CloudEvents HTTP binding 3.1.3.2: printable ASCII is sent as is, except space, '"' and '%'.
HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')


def header_value(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return quote(text, safe=HEADER_SAFE)


def is_json(content_type: str | None) -> bool:
    return content_type is None or bool(
        JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type)
    )


def http_cases(conformance: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for name in ("v1.yaml", "v1_minimum.yaml"):
        text = (conformance / "cloudevents-http" / name).read_text(encoding="utf-8")
        # BaseLoader keeps every scalar a string: "1.0" and timestamps must stay text.
        for number, case in enumerate(yaml.load_all(text, Loader=yaml.BaseLoader)):
            if case:
                yield f"{name}#{number}", case


def http_request(case: dict[str, Any]) -> tuple[dict[str, str], bytes, dict[str, Any]]:
    """Headers and body for a case, and the attributes the receiver must see."""
    attributes = {k: v for k, v in case["ContextAttributes"].items() if k != "Extensions"}
    extensions = dict(case["ContextAttributes"].get("Extensions") or {})
    data = case.get("Data")
    content_type = attributes.get("datacontenttype")
    headers = dict(case.get("TransportExtensions") or {})
    if case.get("Mode", "binary") == "structured":
        document: dict[str, Any] = {**attributes, **extensions}
        if data is not None:
            document["data"] = json.loads(data) if is_json(content_type) else data
        headers["Content-Type"] = STRUCTURED
        return headers, json.dumps(document).encode(), {**attributes, **extensions}
    for name, value in {**attributes, **extensions}.items():
        if name == "datacontenttype":
            headers["Content-Type"] = value
        else:
            headers[f"ce-{name}"] = header_value(value)
    return headers, (data or "").encode("utf-8"), {**attributes, **extensions}


def format_cases(conformance: Path, name: str) -> list[dict[str, Any]]:
    path = conformance / "cloudevents-format-json" / name
    tests: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8-sig"))["tests"]
    return tests


def as_binary(event: dict[str, Any]) -> tuple[dict[str, str], bytes] | None:
    """The binary-mode form of a JSON-format event, or None when binary mode cannot say it:
    non-string values lose their type in a header, header names lose their case, and WSGI
    does not tell an empty Content-Type from a missing one."""
    if "data_base64" in event or event.get("datacontenttype") == "" or any(
        not isinstance(v, str | None) or k != k.lower() for k, v in event.items() if k != "data"
    ):
        return None
    headers: dict[str, str] = {}
    for name, value in event.items():
        if value is None or name == "data":
            continue
        if name == "datacontenttype":
            headers["Content-Type"] = value
        else:
            headers[f"ce-{name}"] = header_value(value)
    data = event.get("data")
    if data is None:
        body = b""
    elif is_json(event.get("datacontenttype")):
        body = json.dumps(data).encode()
    else:
        body = str(data).encode()
    return headers, body
