"""The CESQL grammar (specification section 2), parsed by lark's LALR parser.

The rules are layered by the precedence of specification 3.6, loosest first: AND, OR and
XOR share one level and associate left to right, as the text says. (The ANTLR grammar
behind the Go and Java SDKs makes that level right-associative, so `a AND b OR c` reads
`a AND (b OR c)` there; here it reads `(a AND b) OR c`.) Keywords and identifiers are
case-insensitive. `NOT LIKE` and `NOT IN` are single tokens, which keeps the grammar
LALR(1): after an operand, one token of lookahead could not tell them from each other.
Integer literals carry no sign: a minus before one is folded into it by the compiler,
which is how -2147483648 stays in range.
"""

from __future__ import annotations

from functools import cache
from typing import Final

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from .errors import ParseError

GRAMMAR: Final = r"""
?start: logic

?logic: comparison
      | logic (AND | OR | XOR) comparison               -> binary
?comparison: sum
      | comparison COMPARISON sum                       -> binary
?sum: product
      | sum (PLUS | MINUS) product                      -> binary
?product: membership
      | product (STAR | SLASH | PERCENT) membership     -> binary
?membership: like
      | membership (IN | NOT_IN) "(" logic ("," logic)* ")"   -> membership
?like: unary
      | like (LIKE | NOT_LIKE) STRING                   -> like
?unary: NOT unary                                       -> not_
      | MINUS unary                                     -> negate
      | atom
?atom: INTEGER                                          -> integer
      | STRING                                          -> string
      | TRUE                                            -> boolean
      | FALSE                                           -> boolean
      | EXISTS NAME                                     -> exists
      | NAME                                            -> identifier
      | NAME "(" [logic ("," logic)*] ")"               -> call
      | "(" logic ")"

NOT_LIKE.3: /not\s+like\b/i
NOT_IN.3: /not\s+in\b/i
AND.2: /and\b/i
OR.2: /or\b/i
XOR.2: /xor\b/i
NOT.2: /not\b/i
LIKE.2: /like\b/i
IN.2: /in\b/i
EXISTS.2: /exists\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
INTEGER.2: /[0-9]+(?![A-Za-z0-9_])/
NAME: /[A-Za-z0-9_]+/
STRING: /'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/s
COMPARISON: /<>|<=|>=|!=|=|<|>/
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
PERCENT: "%"

%import common.WS
%ignore WS
"""

_OPERATORS: Final = frozenset({"AND", "OR", "XOR", "COMPARISON", "PLUS", "MINUS", "STAR",
                               "SLASH", "PERCENT", "LIKE", "NOT_LIKE", "IN", "NOT_IN"})
_OPERAND_STARTS: Final = frozenset({"INTEGER", "STRING", "TRUE", "FALSE", "EXISTS", "NAME",
                                    "NOT", "MINUS", "LPAR"})
_WORDS: Final = {
    "INTEGER": "an integer", "STRING": "a string literal", "NAME": "an attribute name",
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "$END": "the end of the expression",
    "NOT_LIKE": "NOT LIKE", "NOT_IN": "NOT IN",
}


@cache
def _parser() -> Lark:
    # Built once per process, on first use (a few milliseconds).
    return Lark(GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False)


def parse(text: str) -> Tree[Token]:
    """The parse tree of `text`; ParseError names the position and what was expected."""
    try:
        return _parser().parse(text)
    except UnexpectedInput as error:
        raise _parse_error(text, error) from None


def _parse_error(text: str, error: UnexpectedInput) -> ParseError:
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream or 0
        character = text[position]
        if character in "'\"":
            return ParseError(text, position, f"the string opened here with {character} is "
                              f"never closed: end it with {character} (escape one inside "
                              f"as \\{character})")
        return ParseError(text, position, f"unexpected character {character!r}")
    assert isinstance(error, UnexpectedToken)
    token = error.token
    at_end = token.type == "$END"
    position = len(text.rstrip()) if at_end else (token.start_pos or 0)
    # The interactive parser knows what this state accepts; LALR's own expected set can
    # name tokens that only a merged state would take (such as ')' at the top level).
    parser = error.interactive_parser
    acceptable = (parser.accepts() if parser is not None  # type: ignore[no-untyped-call]
                  else error.expected)
    expected = _expected(set(acceptable))
    found = "the end of the expression" if at_end else repr(str(token))
    return ParseError(text, position, f"expected {_one_of(expected)}, found {found}", expected)


def _one_of(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _expected(terminals: set[str]) -> list[str]:
    """Terminal names as a reader would say them, with whole families summarised."""
    words = []
    if terminals >= _OPERAND_STARTS:
        words.append("an expression (a literal, an attribute, a function call, NOT, - or '(')")
        terminals -= _OPERAND_STARTS
    if len(terminals & _OPERATORS) > 2:
        words.append("an operator")
        terminals -= _OPERATORS
    words += sorted(_WORDS.get(name, name) for name in terminals)
    return words
