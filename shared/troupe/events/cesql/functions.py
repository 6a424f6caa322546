"""CESQL's built-in functions (specification 3.5), resolved by name and arity at compile time.

An implementation takes arguments already cast to its parameter types and returns the
result, or raises `Failure` (origin None) with the value the specification defines beside
the error; the call site sets itself as the origin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .errors import CesqlError, FunctionEvaluationError, MathError
from .values import (
    INT_MIN,
    CastFailure,
    Failure,
    Type,
    Value,
    explicit_boolean,
    to_integer,
    to_string,
)

# Unicode's White_Space property: TRIM removes these and nothing else (str.strip() would
# also remove the information separators U+001C..U+001F, which are control characters).
_WHITE_SPACE: Final = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                       "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


@dataclass(frozen=True)
class Function:
    name: str
    parameters: tuple[Type | None, ...]  # None: any type, passed without a cast
    returns: Type
    implementation: Callable[..., Value]
    variadic: Type | None = None  # the type of any further arguments, if it takes them

    def accepts(self, arity: int) -> bool:
        fixed = len(self.parameters)
        return arity == fixed or (self.variadic is not None and arity > fixed)

    def parameter(self, index: int) -> Type | None:
        return self.parameters[index] if index < len(self.parameters) else self.variadic


def _fail(value: Value, error: CesqlError) -> Failure:
    return Failure(value, [error], None)


def _left(text: str, count: int) -> str:
    if count < 0:
        raise _fail(text, FunctionEvaluationError(f"LEFT of {count} characters: must be >= 0"))
    return text[:count]


def _right(text: str, count: int) -> str:
    if count < 0:
        raise _fail(text, FunctionEvaluationError(f"RIGHT of {count} characters: must be >= 0"))
    return text[max(len(text) - count, 0):]


def _substring(text: str, position: int, length: int | None = None) -> str:
    if length is not None and length < 0:
        raise _fail("", FunctionEvaluationError(f"SUBSTRING length {length}: must be >= 0"))
    if position == 0:
        return ""
    if not -len(text) <= position <= len(text):
        raise _fail("", FunctionEvaluationError(
            f"SUBSTRING position {position} is outside a string of {len(text)} characters"))
    start = position - 1 if position > 0 else len(text) + position
    return text[start:] if length is None else text[start:start + length]


def _abs(number: int) -> int:
    if number == INT_MIN:
        raise _fail(-(INT_MIN + 1), MathError("ABS(-2147483648) overflows the Integer range"))
    return abs(number)


def _explicit(cast: Callable[[Any], Value], zero: Value) -> Callable[[Value], Value]:
    def convert(value: Value) -> Value:
        try:
            return cast(value)
        except CastFailure as failure:
            raise _fail(zero, failure.error) from None
    return convert


def _concat_ws(separator: str, *parts: str) -> str:
    return separator.join(parts)


_S, _I = Type.STRING, Type.INTEGER
BUILT_INS: Final = (
    Function("LENGTH", (_S,), _I, len),
    Function("CONCAT", (), _S, lambda *parts: "".join(parts), variadic=_S),
    Function("CONCAT_WS", (_S,), _S, _concat_ws, variadic=_S),
    Function("LOWER", (_S,), _S, str.lower),
    Function("UPPER", (_S,), _S, str.upper),
    Function("TRIM", (_S,), _S, lambda text: text.strip(_WHITE_SPACE)),
    Function("LEFT", (_S, _I), _S, _left),
    Function("RIGHT", (_S, _I), _S, _right),
    Function("SUBSTRING", (_S, _I), _S, _substring),
    Function("SUBSTRING", (_S, _I, _I), _S, _substring),
    Function("ABS", (_I,), _I, _abs),
    Function("INT", (None,), _I, _explicit(to_integer, 0)),
    Function("BOOL", (None,), Type.BOOLEAN, _explicit(explicit_boolean, False)),
    Function("STRING", (None,), _S, to_string),
)


def resolve(name: str, arity: int) -> Function | None:
    """The built-in NAME (any case) taking `arity` arguments; a fixed arity wins over a
    variadic one, as the specification's overloading rule implies."""
    wanted = name.upper()
    candidates = [f for f in BUILT_INS if f.name == wanted and f.accepts(arity)]
    candidates.sort(key=lambda f: f.variadic is not None)
    return candidates[0] if candidates else None


def arities(name: str) -> list[str]:
    """How NAME can be called, for an error message: e.g. ['2', '3'] or ['1 or more']."""
    wanted = name.upper()
    return [f"{len(f.parameters)} or more" if f.variadic is not None else str(len(f.parameters))
            for f in BUILT_INS if f.name == wanted]


__all__ = ["BUILT_INS", "Function", "arities", "resolve"]
