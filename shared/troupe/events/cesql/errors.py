"""CESQL's error kinds (specification section 3.3), under the `troupe.events` error root.

`ParseError` is raised when an expression is compiled. The others are what evaluating an
expression reports beside its value, the specification's "error list": they are
exceptions so that a caller may raise one, but evaluation returns them instead. `kind` is
the name the specification's test kit gives each one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from ..errors import EventError


class CesqlError(EventError):
    """Root of the CESQL errors; a GenericError in the specification's terms."""

    kind: ClassVar[str] = "generic"


class ParseError(CesqlError, ValueError):
    """The text is not a CESQL expression; names the position and what was expected there."""

    kind = "parse"

    def __init__(self, expression: str, position: int, problem: str,
                 expected: Sequence[str] = ()) -> None:
        self.expression = expression
        self.position = position  # 0-based offset into the expression
        self.line = expression.count("\n", 0, position) + 1
        self.column = position - (expression.rfind("\n", 0, position) + 1) + 1
        self.problem = problem
        self.expected = tuple(expected)
        where = f"line {self.line}, column {self.column}" if "\n" in expression else (
            f"column {self.column}")
        super().__init__(f"invalid CESQL at {where}: {problem}")

    def pointer(self) -> str:
        """The offending line with a caret under the position, for a terminal."""
        start = self.expression.rfind("\n", 0, self.position) + 1
        end = self.expression.find("\n", self.position)
        line = self.expression[start:] if end < 0 else self.expression[start:end]
        return f"{line}\n{' ' * (self.position - start)}^"


class MathError(CesqlError, ArithmeticError):
    """Division or modulo by zero, or a result outside the 32-bit Integer range."""

    kind = "math"


class CastError(CesqlError, ValueError):
    """A value that cannot be cast to the type an operator or function needs."""

    kind = "cast"


class MissingAttributeError(CesqlError, LookupError):
    """The expression reads an attribute that the event does not have."""

    kind = "missingAttribute"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"the event has no attribute {name!r}")


class MissingFunctionError(CesqlError, LookupError):
    """A call to a function that does not exist with that many arguments."""

    kind = "missingFunction"


class FunctionEvaluationError(CesqlError, ValueError):
    """A built-in function was given arguments outside its domain."""

    kind = "functionEvaluation"


class NotAPredicateError(CesqlError, TypeError):
    """A filter whose expression can never yield a Boolean, so no event could ever match."""
