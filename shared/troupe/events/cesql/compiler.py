"""From a lark parse tree to one closure per node: what an expression compiles into.

Everything that can be decided without an event is decided here, once: the grammar's
leftovers (identifier rules, the Integer range), which function a call dispatches to,
the LIKE pattern, and any subexpression made of literals only, which is folded into one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import VisitError

from . import operators as op
from .errors import MissingFunctionError, ParseError
from .functions import arities, resolve
from .grammar import parse
from .values import INT_MAX, Failure, Type, Value

_ATTRIBUTE_NAME: Final = re.compile(r"[a-z0-9]+")
_FUNCTION_NAME: Final = re.compile(r"[A-Za-z][A-Za-z_]*")
_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)
# Compiling and evaluating recurse once per level: far beyond any real filter, and far
# below Python's recursion limit, wherever the evaluation runs.
MAX_DEPTH: Final = 200


@dataclass(frozen=True)
class Compiled:
    """The root node of an expression and what compiling it found out."""

    root: op.Node
    problems: tuple[MissingFunctionError, ...]  # errors every evaluation would report


def compile_tree(text: str) -> Compiled:
    tree = parse(text)
    depth = _depth(tree)
    if depth > MAX_DEPTH:
        raise ParseError(text, 0, f"the expression nests {depth} operations deep, more than "
                                  f"the {MAX_DEPTH} allowed: split it into several filters")
    compiler = _Compiler(text)
    try:
        root = compiler.transform(tree)
    except VisitError as error:  # lark wraps what a callback raises
        if isinstance(error.orig_exc, ParseError):
            raise error.orig_exc from None
        raise
    compiler.check_integers()
    return Compiled(root, tuple(compiler.problems))


def _depth(tree: Tree[Token]) -> int:
    deepest, pending = 0, [(tree, 1)]
    while pending:  # not recursive: the point is to refuse what recursion cannot take
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        pending += [(child, depth + 1) for child in node.children if isinstance(child, Tree)]
    return deepest


@v_args(inline=True)
class _Compiler(Transformer[Token, op.Node]):
    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text
        self.problems: list[MissingFunctionError] = []
        # 2147483648 is out of range unless a minus sign folds it into -2147483648.
        self._too_large: list[tuple[op.Node, Token]] = []

    def check_integers(self) -> None:
        if self._too_large:
            node, token = self._too_large[0]
            raise ParseError(self._text, token.start_pos or 0,
                             f"{node.value} is outside the Integer range "
                             f"({-INT_MAX - 1} to {INT_MAX})")

    def _error(self, token: Token, problem: str) -> ParseError:
        return ParseError(self._text, token.start_pos or 0, problem)

    # -- atoms -------------------------------------------------------------------------
    def integer(self, token: Token) -> op.Node:
        node = op.literal(int(token))
        if node.value > INT_MAX:  # type: ignore[operator]
            self._too_large.append((node, token))
        return node

    def string(self, token: Token) -> op.Node:
        quote, body = token[0], token[1:-1]
        # Only the delimiting quote is escaped; other backslashes stay for LIKE to read.
        return op.literal(_ESCAPE.sub(lambda m: m[1] if m[1] == quote else m[0], body))

    def boolean(self, token: Token) -> op.Node:
        return op.literal(token.lower() == "true")

    def identifier(self, token: Token) -> op.Node:
        return op.attribute(self._attribute_name(token))

    def exists(self, _keyword: Token, token: Token) -> op.Node:
        return op.exists(self._attribute_name(token))

    def _attribute_name(self, token: Token) -> str:
        name = token.lower()  # the test kit reads `EXISTS SOURCE` as `source`
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise self._error(token, f"{str(token)!r} is not an attribute name: CloudEvents "
                                     "attribute names have only letters a-z and digits")
        return name

    def call(self, token: Token, *arguments: op.Node) -> op.Node:
        if not _FUNCTION_NAME.fullmatch(token):
            raise self._error(token, f"{str(token)!r} is not a function name: function names "
                                     "have only letters and underscores")
        function = resolve(token, len(arguments))
        if function is None:
            known = arities(token)
            usage = (f"{token.upper()} takes {' or '.join(known)} arguments" if known else
                     "the built-in functions are ABS, BOOL, CONCAT, CONCAT_WS, INT, LEFT, "
                     "LENGTH, LOWER, RIGHT, STRING, SUBSTRING, TRIM and UPPER")
            problem = MissingFunctionError(
                f"no function {token.upper()} taking {len(arguments)} arguments: {usage}")
            self.problems.append(problem)
            return op.missing_function(problem)
        return _folded(op.call(function, arguments), arguments)

    # -- operators ---------------------------------------------------------------------
    def not_(self, _keyword: Token, operand: op.Node) -> op.Node:
        return _folded(op.not_(operand), [operand])

    def negate(self, _minus: Token, operand: op.Node) -> op.Node:
        for index, (node, _) in enumerate(self._too_large):
            if node is operand and node.value == INT_MAX + 1:
                del self._too_large[index]
                return op.literal(-INT_MAX - 1)
        return _folded(op.negate(operand), [operand])

    def binary(self, left: op.Node, operator: Token, right: op.Node) -> op.Node:
        symbol = str(operator).upper()
        if symbol in ("AND", "OR") and left.type is right.type is Type.BOOLEAN:
            node = op.chain(symbol, left, right)
        elif operator.type in ("AND", "OR", "XOR"):
            node = op.logic(symbol, left, right)
        elif symbol in ("=", "!=", "<>"):
            node = op.equality(symbol != "=", left, right)
        elif operator.type == "COMPARISON":
            node = op.ordering(symbol, left, right)
        else:
            node = op.arithmetic(symbol, left, right)
        return _folded(node, [left, right])

    def like(self, operand: op.Node, operator: Token, pattern: Token) -> op.Node:
        node = op.like(operator.type == "NOT_LIKE", operand, self.string(pattern).value)  # type: ignore[arg-type]
        return _folded(node, [operand])

    def membership(self, left: op.Node, operator: Token, *elements: op.Node) -> op.Node:
        node = op.membership(operator.type == "NOT_IN", left, elements)
        return _folded(node, [left, *elements])


def _folded(node: op.Node, operands: Sequence[op.Node]) -> op.Node:
    """A step over literals only, as the literal it evaluates to (unless it fails: then it
    stays, to report its error on every evaluation)."""
    if not all(operand.constant for operand in operands):
        return node
    try:
        value: Value = node.run({})
    except Failure:
        return node
    return op.literal(value)
