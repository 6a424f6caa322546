"""A compiled CESQL expression: parsed once, then evaluated per event without reparsing.

    expression = compile_expression("type LIKE 'dev.troupe.model.%' AND int(hop) < 3")
    expression.evaluate(event)   # Evaluation(value=True, errors=())
    expression.matches(event)    # the filter answer: true, and no error

`compile_filter` also refuses, at once, what could never match: an expression whose type
is not Boolean, or a call to a function that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from .compiler import compile_tree
from .errors import CesqlError, NotAPredicateError
from .values import Attributes, Failure, Type, Value

Event = CloudEvent | Attributes
OnError = Callable[[CesqlError], None]


@dataclass(frozen=True, slots=True)
class Evaluation:
    value: Value
    errors: tuple[CesqlError, ...] = ()

    @property
    def matched(self) -> bool:
        """What a filter makes of it: only a Boolean true without errors passes."""
        return self.value is True and not self.errors


class Expression:
    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"a CESQL expression is text, not {type(text).__name__}")
        compiled = compile_tree(text)
        self.text = text
        # None when only the event decides (a bare attribute, or a missing function).
        self.type: Type | None = compiled.root.type
        self.problems = compiled.problems
        self._run = compiled.root.run
        # The spec: when the type cannot be told in advance, assume Boolean.
        self._zero: Value = self.type.zero if self.type is not None else False

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def evaluate(self, event: Event) -> Evaluation:
        """The value and the errors, as the specification defines them."""
        attributes = _attributes(event)
        try:
            return Evaluation(self._run(attributes))
        except Failure as failure:
            # The root's own failure carries its value; one passed up from an operand
            # makes the whole expression its zero value.
            value = failure.value if failure.origin is self._run else self._zero
            return Evaluation(value, tuple(failure.errors))

    def matches(self, event: Event) -> bool:
        """What a filter makes of the event: true only for a Boolean true without errors."""
        try:
            return self._run(_attributes(event)) is True
        except Failure:
            return False

    def predicate(self, on_error: OnError | None = None) -> Callable[[Attributes], bool]:
        """A filter over context attributes; `on_error` hears of each event whose
        evaluation reported an error (that event does not match)."""
        run = self._run

        def matches(attributes: Attributes) -> bool:
            try:
                return run(attributes) is True
            except Failure as failure:
                if on_error is not None:
                    on_error(failure.errors[0])
                return False
        return matches


def compile_expression(text: str) -> Expression:
    """Compile `text`; raises ParseError naming the position and what was expected."""
    return Expression(text)


def compile_filter(text: str) -> Expression:
    """Compile `text` as a filter predicate, refusing one that could never match."""
    expression = Expression(text)
    if expression.problems:
        raise expression.problems[0]
    if expression.type is not None and expression.type is not Type.BOOLEAN:
        raise NotAPredicateError(
            f"the expression is {expression.type.value}-valued, so no event would ever pass "
            "it: a filter needs a condition, such as type = 'dev.troupe.model.approved' or "
            "EXISTS subject")
    return expression


def _attributes(event: Any) -> Attributes:
    if isinstance(event, CloudEvent):
        return event.get_attributes()
    return event  # type: ignore[no-any-return]
