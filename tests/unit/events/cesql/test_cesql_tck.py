"""The whole CESQL test kit (../shared/conformance/cesql-tck): every case's result and error.

The kit's events are "valid events serialized in JSON format"; YAML reads their unquoted
timestamps as datetimes, so those go back to their RFC 3339 text before evaluation, as a
Kafka header or a JSON event would carry them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from troupe.events.cesql import CesqlError, ParseError, compile_expression

TCK_CASES = 275  # what the kit in ../shared/conformance/cesql-tck holds
# The kit leaves the attributes of "any valid event" to the engine; these are all REQUIRED.
ANY_VALID_EVENT = {"specversion": "1.0", "id": "tck-1", "source": "/tck", "type": "dev.tck"}


def _as_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _event(case: dict[str, Any]) -> dict[str, Any]:
    event = dict(case.get("event") or ANY_VALID_EVENT)
    event.update(case.get("eventOverrides") or {})
    return {name: _as_json(value) for name, value in event.items()}


def _cases(conformance: Path) -> list[tuple[str, dict[str, Any]]]:
    folder = conformance / "cesql-tck"
    if not folder.is_dir():
        pytest.skip("../shared/conformance/cesql-tck is absent: the CESQL test kit lives there")
    cases = []
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        # Typed values for results and events; the expressions as written (the safe
        # loader would make `TRUE` a bool and `-10` an int).
        suite, verbatim = yaml.safe_load(text), yaml.load(text, Loader=yaml.BaseLoader)
        for case, written in zip(suite["tests"], verbatim["tests"], strict=True):
            cases.append((f"{path.stem}: {case['name']}",
                          {**case, "expression": written["expression"]}))
    return cases


def _outcome(case: dict[str, Any]) -> tuple[Any, str | None]:
    """(value, error kind) the engine gives for the case."""
    try:
        expression = compile_expression(case["expression"])
    except ParseError:
        return None, "parse"
    evaluation = expression.evaluate(_event(case))
    kinds = {error.kind for error in evaluation.errors}
    assert len(kinds) <= 1, f"several kinds of error: {evaluation.errors}"
    return evaluation.value, kinds.pop() if kinds else None


def test_every_case_of_the_cesql_test_kit(conformance: Path) -> None:
    cases = _cases(conformance)
    failures = []
    for name, case in cases:
        value, error = _outcome(case)
        expected_error = case.get("error")
        if error != expected_error:
            failures.append(f"{name}: error {error!r}, expected {expected_error!r}")
            continue
        if "result" in case and error != "parse":
            expected = _as_json(case["result"])
            # bool is an int in Python: the type must match too (TRUE is not 1).
            if type(value) is not type(expected) or value != expected:
                failures.append(f"{name}: {value!r}, expected {expected!r}")
    print(f"ran {len(cases)} CESQL test kit cases, {len(failures)} failed")
    assert not failures, "\n".join(failures)
    assert len(cases) == TCK_CASES


def test_a_kit_parse_error_names_where_and_what(conformance: Path) -> None:
    [(_, case)] = [c for c in _cases(conformance) if c[1]["expression"] == "ABC("]
    with pytest.raises(ParseError) as raised:
        compile_expression(case["expression"])
    assert raised.value.column == 5
    assert "')'" in raised.value.expected
    assert isinstance(raised.value, CesqlError) and isinstance(raised.value, ValueError)
