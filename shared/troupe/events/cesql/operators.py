"""CESQL's operators as closures over their operands' closures (specification 3.4, 3.7).

Each step returns its value, or raises `Failure` with the value and errors it reports.
A step whose operand fails passes the failure up untouched: the evaluator then returns
the zero value of the whole expression's type, the specification's fail-fast mode, which
is also what the test kit expects (`true AND (1 != 1 / 0)` is false with a math error).
A step that fails itself, a cast or a division, still computes its value from the zero
value of the failed cast (`NOT 10` is true with a cast error).

The common case, operands already of the wanted type, is one `type(x) is T` check per
operand; casts and error lists are built only when something is off.
"""

from __future__ import annotations

import contextlib
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .errors import CesqlError, MathError, MissingAttributeError, MissingFunctionError
from .functions import Function
from .values import (
    CASTS,
    INT_MAX,
    INT_MIN,
    Attributes,
    CastFailure,
    Failure,
    Type,
    Value,
    from_attribute,
    lenient,
    lenient_integer,
    to_string,
    type_of,
)

Run = Callable[[Attributes], Value]
_PYTHON: Final[dict[Type, type]] = {Type.BOOLEAN: bool, Type.INTEGER: int, Type.STRING: str}


@dataclass(frozen=True, slots=True)
class Node:
    run: Run
    type: Type | None  # None: known only per event (an attribute's value)
    constant: bool = False  # `run` ignores the event: `value` is its result
    value: Value = False
    attribute: str | None = None  # the attribute this node reads, when it only reads one
    chain: str | None = None  # AND or OR: `run` is that over `parts`, flattened
    parts: tuple[Run, ...] = ()


# -- atoms ---------------------------------------------------------------------------------
def literal(value: Value) -> Node:
    def run(_: Attributes) -> Value:
        return value
    return Node(run, type_of(value), constant=True, value=value)


def attribute(name: str) -> Node:
    def run(attributes: Attributes) -> Value:
        value = attributes.get(name)
        if type(value) is str:
            return value
        if value is None:
            raise Failure(False, [MissingAttributeError(name)], run)
        return from_attribute(value)
    return Node(run, None, attribute=name)


def exists(name: str) -> Node:
    def run(attributes: Attributes) -> Value:
        return attributes.get(name) is not None
    return Node(run, Type.BOOLEAN)


# -- unary ---------------------------------------------------------------------------------
def not_(operand: Node) -> Node:
    inner = operand.run

    def run(attributes: Attributes) -> Value:
        value = inner(attributes)
        if value is True or value is False:
            return not value
        errors: list[CesqlError] = []
        result = not lenient(Type.BOOLEAN, value, errors)
        if errors:
            raise Failure(result, errors, run)
        return result
    return Node(run, Type.BOOLEAN)


def negate(operand: Node) -> Node:
    inner = operand.run

    def run(attributes: Attributes) -> Value:
        value = inner(attributes)
        errors: list[CesqlError] = []
        value = lenient_integer(value, errors)
        if value == INT_MIN:
            errors.append(MathError("-(-2147483648) is outside the Integer range"))
            raise Failure(0, errors, run)
        if errors:
            raise Failure(-value, errors, run)
        return -value
    return Node(run, Type.INTEGER)


# -- binary --------------------------------------------------------------------------------
def logic(keyword: str, left: Node, right: Node) -> Node:
    """AND and OR stop at a deciding left operand (false, true), as the specification
    requires; XOR always evaluates both."""
    first, second = left.run, right.run
    deciding: bool | None = {"AND": False, "OR": True}.get(keyword)

    def run(attributes: Attributes) -> Value:
        a = first(attributes)
        errors: list[CesqlError] | None = None
        if a is not True and a is not False:
            errors = []
            a = lenient(Type.BOOLEAN, a, errors)
        if a is deciding:
            if errors:
                raise Failure(a, errors, run)
            return a
        b = second(attributes)
        if b is not True and b is not False:
            errors = errors if errors is not None else []
            b = lenient(Type.BOOLEAN, b, errors)
        result = b if deciding is not None else a is not b
        if errors:
            raise Failure(result, errors, run)
        return result
    return Node(run, Type.BOOLEAN)


def chain(keyword: str, left: Node, right: Node) -> Node:
    """AND or OR over operands Boolean by type, flattened: `a AND b AND c` is one step.

    Such operands return a bool or fail, so no step of the chain ever casts, and an
    operand's failure passes up exactly as it would through nested steps."""
    parts = (left.parts if left.chain == keyword else (left.run,)) + (right.run,)
    if keyword == "AND":
        if len(parts) == 2:
            a, b = parts

            def run(attributes: Attributes) -> Value:
                return a(attributes) and b(attributes)
        elif len(parts) == 3:
            a, b, c = parts

            def run(attributes: Attributes) -> Value:
                return a(attributes) and b(attributes) and c(attributes)
        else:
            def run(attributes: Attributes) -> Value:
                return all(part(attributes) for part in parts)
    elif len(parts) == 2:
        a, b = parts

        def run(attributes: Attributes) -> Value:
            return a(attributes) or b(attributes)
    else:
        def run(attributes: Attributes) -> Value:
            return any(part(attributes) for part in parts)
    return Node(run, Type.BOOLEAN, chain=keyword, parts=parts)


def equality(negated: bool, left: Node, right: Node) -> Node:
    """`=` is overloaded for all three types: the left operand is cast to the right's type."""
    first, second = left.run, right.run
    if right.constant:
        return _equality_to_constant(negated, left, right.value)

    def run(attributes: Attributes) -> Value:
        a, b = first(attributes), second(attributes)
        if type(a) is not type(b):
            errors: list[CesqlError] = []
            a = lenient(type_of(b), a, errors)
            if errors:
                raise Failure((a == b) is not negated, errors, run)
        return (a == b) is not negated
    return Node(run, Type.BOOLEAN)


def _equality_to_constant(negated: bool, left: Node, constant: Value) -> Node:
    first, wanted, target = left.run, type(constant), type_of(constant)
    name = left.attribute

    def run(attributes: Attributes) -> Value:
        # Reading the attribute here saves a call for the usual `attribute = 'literal'`.
        a: Any = attributes.get(name) if name is not None else first(attributes)
        if type(a) is not wanted:
            if name is not None:
                a = first(attributes)  # missing, or not a String: the attribute's own path
            if type(a) is not wanted:
                errors: list[CesqlError] = []
                a = lenient(target, a, errors)
                if errors:
                    raise Failure((a == constant) is not negated, errors, run)
        return (a == constant) is not negated
    return Node(run, Type.BOOLEAN)


_ORDERINGS: Final = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def ordering(symbol: str, left: Node, right: Node) -> Node:
    first, second, compare = left.run, right.run, _ORDERINGS[symbol]

    def run(attributes: Attributes) -> Value:
        a, b = first(attributes), second(attributes)
        if type(a) is not int or type(b) is not int:
            errors: list[CesqlError] = []
            a = lenient(Type.INTEGER, a, errors)
            b = lenient(Type.INTEGER, b, errors)
            if errors:
                raise Failure(compare(a, b), errors, run)
        return compare(a, b)  # type: ignore[no-any-return]
    return Node(run, Type.BOOLEAN)


def _divide(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)  # rounded towards zero, unlike Python's //
    return quotient if (a < 0) == (b < 0) else -quotient


def _remainder(a: int, b: int) -> int:
    return a - b * _divide(a, b)  # takes the sign of a, unlike Python's %


_ARITHMETIC: Final[dict[str, Callable[[int, int], int]]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": _divide, "%": _remainder}


def arithmetic(symbol: str, left: Node, right: Node) -> Node:
    first, second, compute = left.run, right.run, _ARITHMETIC[symbol]

    def run(attributes: Attributes) -> Value:
        a, b = first(attributes), second(attributes)
        errors: list[CesqlError] = []
        if type(a) is not int or type(b) is not int:
            a = lenient(Type.INTEGER, a, errors)
            b = lenient(Type.INTEGER, b, errors)
        try:
            result = compute(a, b)  # type: ignore[arg-type]
        except ZeroDivisionError:
            errors.append(MathError(f"{a} {symbol} 0: division by zero"))
            raise Failure(0, errors, run) from None
        if not INT_MIN <= result <= INT_MAX:
            errors.append(MathError(f"{a} {symbol} {b} is outside the Integer range"))
            raise Failure(0, errors, run)
        if errors:
            raise Failure(result, errors, run)
        return result
    return Node(run, Type.INTEGER)


# -- LIKE, IN ------------------------------------------------------------------------------
_EXACT, _PREFIX, _SUFFIX, _REGEX = range(4)


def like(negated: bool, operand: Node, pattern: str) -> Node:
    shape, text, regex = like_pattern(pattern)
    inner, name = operand.run, operand.attribute

    def run(attributes: Attributes) -> Value:
        # Reading the attribute here saves a call for the usual `attribute LIKE '...'`.
        value = attributes.get(name) if name is not None else None
        if type(value) is not str:
            value = inner(attributes)
            if type(value) is not str:
                value = to_string(value)  # never fails
        # The shapes filters use most are one string method (a bound one: calling
        # str.startswith unbound costs twice as much).
        if shape == _PREFIX:
            return value.startswith(text) is not negated
        if shape == _SUFFIX:
            return value.endswith(text) is not negated
        if shape == _EXACT:
            return (value == text) is not negated
        return (regex.fullmatch(value) is not None) is not negated
    return Node(run, Type.BOOLEAN)


def like_pattern(pattern: str) -> tuple[int, str, re.Pattern[str]]:
    """(shape, text, regex) of LIKE `pattern`: `%` is any run of characters, `_` one
    character, `\\%` and `\\_` are themselves, any other backslash is a backslash."""
    pieces: list[str | None] = []  # literal text, or None for %, or "" for _
    text = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and pattern[index + 1:index + 2] in ("%", "_"):
            text += pattern[index + 1]
            index += 2
            continue
        if char in "%_":
            if text:
                pieces.append(text)
                text = ""
            pieces.append(None if char == "%" else "")
        else:
            text += char
        index += 1
    if text:
        pieces.append(text)
    regex = re.compile("".join(".*" if p is None else "." if p == "" else re.escape(p)
                               for p in pieces), re.DOTALL)
    first, last = (pieces[0], pieces[-1]) if pieces else ("", "")
    if not pieces or (len(pieces) == 1 and first):  # no wildcard ("" is the _ wildcard)
        return _EXACT, first or "", regex
    if len(pieces) == 2 and last is None and first:
        return _PREFIX, first, regex
    if len(pieces) == 2 and first is None and last:
        return _SUFFIX, last, regex
    return _REGEX, "", regex


def membership(negated: bool, left: Node, elements: Sequence[Node]) -> Node:
    """IN compares with `=`, casting each element to the left operand's type."""
    first, name = left.run, left.attribute
    runs = [element.run for element in elements]
    # All literals: a set per type the left operand may have, unless a cast fails.
    sets: dict[type, frozenset[Value]] = {}
    if all(element.constant for element in elements):
        for target, python_type in _PYTHON.items():
            with contextlib.suppress(CastFailure):  # that type takes the slow path
                sets[python_type] = frozenset(CASTS[target](e.value) for e in elements)

    def run(attributes: Attributes) -> Value:
        a = attributes.get(name) if name is not None else None
        if type(a) is not str:
            a = first(attributes)
        members = sets.get(type(a))
        if members is not None:
            return (a in members) is not negated
        errors: list[CesqlError] = []
        target, found = type_of(a), False
        for element in runs:
            b = element(attributes)
            if type(b) is not type(a):
                b = lenient(target, b, errors)
            if a == b:
                found = True
                break
        if errors:
            raise Failure(found is not negated, errors, run)
        return found is not negated
    return Node(run, Type.BOOLEAN)


# -- functions -----------------------------------------------------------------------------
def call(function: Function, arguments: Sequence[Node]) -> Node:
    runs = [argument.run for argument in arguments]
    casts = [(index, target, _PYTHON[target]) for index in range(len(arguments))
             if (target := function.parameter(index)) is not None]
    implementation = function.implementation

    def run(attributes: Attributes) -> Value:
        values = [argument(attributes) for argument in runs]
        errors: list[CesqlError] = []
        for index, target, python_type in casts:
            if type(values[index]) is not python_type:
                values[index] = lenient(target, values[index], errors)
        try:
            result = implementation(*values)
        except Failure as failure:
            raise Failure(failure.value, errors + failure.errors, run) from None
        if errors:
            raise Failure(result, errors, run)
        return result
    return Node(run, function.returns)


def missing_function(error: MissingFunctionError) -> Node:
    def run(_: Attributes) -> Value:
        raise Failure(False, [error], run)
    return Node(run, None)
