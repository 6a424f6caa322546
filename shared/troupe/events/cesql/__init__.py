"""CloudEvents SQL (CESQL 1.0): the expression language of Knative's `cesql` filters.

Parsed by a lark grammar, compiled once into closures, and evaluated per event (a
CloudEvent, or a mapping of context attributes such as a Kafka record's headers) with the
specification's types, implicit casts, built-in functions and errors. Held to the
specification's test kit (../shared/conformance/cesql-tck).
"""

from .errors import (
    CastError,
    CesqlError,
    FunctionEvaluationError,
    MathError,
    MissingAttributeError,
    MissingFunctionError,
    NotAPredicateError,
    ParseError,
)
from .expression import Evaluation, Expression, compile_expression, compile_filter
from .values import Type, Value

__all__ = [
    "CastError",
    "CesqlError",
    "Evaluation",
    "Expression",
    "FunctionEvaluationError",
    "MathError",
    "MissingAttributeError",
    "MissingFunctionError",
    "NotAPredicateError",
    "ParseError",
    "Type",
    "Value",
    "compile_expression",
    "compile_filter",
]
