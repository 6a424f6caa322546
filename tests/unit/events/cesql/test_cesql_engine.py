"""The CESQL engine beyond the test kit: CloudEvent input, errors a user meets, the choices
the specification leaves open, and the filter form the data plane uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent
from troupe.events import EventError
from troupe.events.cesql import (
    CastError,
    CesqlError,
    Evaluation,
    MathError,
    MissingAttributeError,
    MissingFunctionError,
    NotAPredicateError,
    ParseError,
    Type,
    compile_expression,
    compile_filter,
    grammar,
)

EVENT = {"specversion": "1.0", "id": "e-1", "source": "/evaluator",
         "type": "dev.troupe.model.approved", "sequence": "7", "flag": "TRUE"}


def value_of(text: str, event: Any = EVENT) -> Any:
    evaluation = compile_expression(text).evaluate(event)
    assert not evaluation.errors, evaluation.errors
    return evaluation.value


def error_of(text: str, event: Any = EVENT) -> CesqlError:
    [error] = compile_expression(text).evaluate(event).errors
    return error


def test_a_cloudevent_is_read_through_its_attributes_with_timestamps_as_rfc3339() -> None:
    event = CloudEvent({"id": "1", "source": "/s", "type": "t", "subject": "v3",
                        "time": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
                        "hop": 3, "urgent": True})
    assert value_of("time", event) == "2024-05-01T12:00:00Z"
    assert value_of("time LIKE '2024-05-%'", event) is True
    assert value_of("hop + 1", event) == 4
    assert value_of("urgent AND subject = 'v3'", event) is True
    offset = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert value_of("time", CloudEvent({"source": "/s", "type": "t", "time": offset})) == (
        "2024-05-01T14:00:00+02:00")
    assert compile_filter("hop > 2 AND EXISTS subject").matches(event)


def test_logical_operators_share_a_level_and_associate_left_to_right() -> None:
    # Specification 3.6: AND, OR and XOR have one precedence, evaluated left to right.
    assert value_of("true OR false AND false") is False
    assert value_of("true OR (false AND false)") is True
    assert value_of("1 + 2 * 3 = 7 AND 10 - 4 - 3 = 3") is True
    assert value_of("NOT FALSE = TRUE") is True  # (NOT FALSE) = TRUE


def test_integer_arithmetic_truncates_towards_zero_and_reports_overflow() -> None:
    assert [value_of(t) for t in ("-7 / 2", "-7 % 2", "7 % -2", "-2147483648")] == [
        -3, -1, 1, -2147483648]
    overflow = compile_expression("2147483647 + sequence").evaluate(EVENT)
    assert overflow.value == 0 and isinstance(overflow.errors[0], MathError)


@pytest.mark.parametrize("text", [" 7", "7 ", "1_0", "\u0663", "0x10", "2147483648", ""])
def test_only_a_sign_and_ascii_digits_cast_to_integer(text: str) -> None:
    evaluation = compile_expression("INT(x)").evaluate({**EVENT, "x": text})
    assert evaluation.value == 0 and isinstance(evaluation.errors[0], CastError)


def test_implicit_casts_follow_the_right_operand_of_equality() -> None:
    assert value_of("sequence = 7") is True  # '7' cast to Integer
    assert value_of("sequence > 5 AND sequence <= 7") is True
    assert value_of("flag = true") is True  # 'TRUE' cast to Boolean
    assert value_of("true = flag") is False  # true cast to String: 'true' != 'TRUE'
    assert isinstance(error_of("type = 1"), CastError)


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("abc", "abc", True), ("abc", "abcd", False),
    ("dev.%", "dev.troupe", True), ("dev.%", "de", False),
    ("%.approved", "dev.x.approved", True), ("%.approved", "approved", False),
    ("%troupe%", "dev.troupe.x", True), ("a_c", "abc", True), ("a_c", "ac", False),
    ("a\\%c", "a%c", True), ("a\\%c", "abc", False), ("a\\_c", "abc", False),
    ("a%", "a\nb", True), ("", "", True), ("%", "", True), ("a.c", "abc", False),
    ("_", "a", True), ("_", "", False), ("_", "ab", False), ("%%", "x", True),
])
def test_like_patterns(pattern: str, value: str, expected: bool) -> None:
    escaped = pattern.replace("'", "\\'")
    assert value_of(f"x LIKE '{escaped}'", {**EVENT, "x": value}) is expected
    assert value_of(f"x NOT LIKE '{escaped}'", {**EVENT, "x": value}) is not expected


def test_in_casts_each_element_to_the_left_operand_type() -> None:
    assert value_of("sequence IN (6, 7)") is True  # the String '7' leads: '6', '7'
    mixed = compile_expression("INT(sequence) IN ('x', 7)").evaluate(EVENT)
    assert mixed.value is True and isinstance(mixed.errors[0], CastError)
    assert value_of("type IN (source, 'dev.troupe.model.approved')") is True
    assert value_of("type NOT IN ('a', 'b')") is True


def test_trim_removes_unicode_white_space_only() -> None:
    assert value_of("TRIM(x)", {**EVENT, "x": "\u3000 a\u00a0\t"}) == "a"
    assert value_of("LENGTH(TRIM(x))", {**EVENT, "x": "\x1ca\x1c"}) == 3


def test_missing_values_and_absent_attributes() -> None:
    event = {**EVENT, "subject": None, "big": 2**40}
    assert value_of("EXISTS subject", event) is False
    assert isinstance(error_of("subject = 'x'", event), MissingAttributeError)
    assert value_of("big", event) == str(2**40)  # not a 32-bit Integer: a String


@pytest.mark.parametrize(("text", "column", "says"), [
    ("type = ", 7, "expected an expression"),  # just after the last token
    ("type == 'x'", 7, "found '='"),
    ("type LIKE 1", 11, "expected a string literal"),
    ("type = 'x", 8, "never closed"),
    ("my_ext = 'x'", 1, "not an attribute name"),
    ("f1(x)", 1, "not a function name"),
    ("x = 2147483648", 5, "outside the Integer range"),
    ("(type = 'x'", 12, "expected an operator or ')'"),
    ("type = 'x' AND", 15, "found the end of the expression"),
    ("x @ 1", 3, "unexpected character '@'"),
])
def test_parse_errors_name_the_position_and_what_was_expected(
        text: str, column: int, says: str) -> None:
    with pytest.raises(ParseError) as raised:
        compile_expression(text)
    assert (raised.value.line, raised.value.column) == (1, column)
    assert says in str(raised.value)
    assert raised.value.pointer().splitlines()[1] == " " * (column - 1) + "^"
    assert isinstance(raised.value, EventError)


def test_a_multi_line_expression_reports_line_and_column() -> None:
    with pytest.raises(ParseError, match="line 2, column 5"):
        compile_expression("type = 'x'\nAND AND")


def test_keywords_and_attribute_names_ignore_case() -> None:
    assert value_of("exists TYPE and Type like 'dev.%' aNd NoT FaLsE") is True
    assert value_of("android = 'x' OR true", {**EVENT, "android": "y"}) is True


def test_a_filter_refuses_what_could_never_match() -> None:
    with pytest.raises(NotAPredicateError, match="Integer-valued"):
        compile_filter("sequence + 1")
    with pytest.raises(NotAPredicateError, match="String-valued"):
        compile_filter("LOWER(type)")
    with pytest.raises(MissingFunctionError, match="HASPREFIX"):
        compile_filter("HASPREFIX(type, 'dev')")
    with pytest.raises(MissingFunctionError, match="SUBSTRING takes 2 or 3 arguments"):
        compile_filter("SUBSTRING(type) = 'x'")
    assert compile_filter("flag").type is None  # only the event can tell


def test_a_filter_matches_only_a_boolean_true_without_errors() -> None:
    heard: list[CesqlError] = []
    matches = compile_filter("type = 'dev.troupe.model.approved' AND myext = 'x'").predicate(
        heard.append)
    assert matches({**EVENT, "myext": "x"}) is True
    assert matches({**EVENT, "myext": "y"}) is False
    assert matches(EVENT) is False
    assert [type(e) for e in heard] == [MissingAttributeError]
    assert compile_filter("flag").matches({**EVENT, "flag": "true"}) is False  # a String


def test_evaluation_never_goes_back_to_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    expression = compile_expression("int(sequence) * 2 = 14 AND type LIKE '%.approved'")

    def no_parsing(text: str) -> Any:
        raise AssertionError("parsed again")

    monkeypatch.setattr(grammar, "parse", no_parsing)
    assert expression.evaluate(EVENT) == Evaluation(True)
    assert expression.type is Type.BOOLEAN


def test_literal_subexpressions_are_folded_but_failures_stay() -> None:
    assert value_of("LENGTH('abc') + 1 = 4") is True
    failing = compile_expression("1 / 0 = 0 OR true")
    assert isinstance(failing.evaluate(EVENT).errors[0], MathError)


def test_an_expression_nesting_too_deep_is_refused_not_a_crash() -> None:
    assert value_of(" AND ".join(["true"] * 150)) is True
    assert value_of("(" * 3000 + "1" + ")" * 3000) == 1  # parentheses alone add no depth
    for text in (" AND ".join(["true"] * 5000), "NOT " * 300 + "true"):
        with pytest.raises(ParseError, match="more than the 200 allowed"):
            compile_expression(text)


def test_an_expression_must_be_text() -> None:
    with pytest.raises(TypeError, match="not bool"):
        compile_expression(True)  # type: ignore[arg-type]
