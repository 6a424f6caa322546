"""Label and field selectors, as `kubectl get -l` and `kubectl wait` send them.

Label selectors take both forms of the Kubernetes syntax: equality (`a=b`, `a==b`, `a!=b`)
and sets (`a in (x,y)`, `a notin (x)`, `a`, `!a`). Field selectors on custom resources are
limited, as on the API server, to `metadata.name` and `metadata.namespace`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from troupe.local.controlplane.kinds import Obj
from troupe.local.controlplane.status import bad_request

Selector = Callable[[Obj], bool]

_SET_TERM: Final = re.compile(r"^\s*(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s+"
                              r"\((?P<values>[^()]*)\)\s*$")
_FIELDS: Final = ("metadata.name", "metadata.namespace")


def _terms(selector: str) -> list[str]:
    """Split at the commas outside parentheses: `a in (x,y),b=c` has two terms."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term.strip() for term in terms if term.strip()]


def label_selector(selector: str) -> Selector:
    """A predicate on an object's labels; a malformed selector is answered 400."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _terms(selector):
        match = _SET_TERM.match(term)
        if match:
            values = {v.strip() for v in match["values"].split(",") if v.strip()}
            key = match["key"]
            if match["op"] == "in":
                checks.append(lambda labels, key=key, values=values:  # type: ignore[misc]
                              labels.get(key) in values)
            else:  # notin: also true of an object without the label, as in Kubernetes
                checks.append(lambda labels, key=key, values=values:  # type: ignore[misc]
                              labels.get(key) not in values)
        elif "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            checks.append(lambda labels, key=key, value=value:  # type: ignore[misc]
                          labels.get(key) != value)
        elif "=" in term:
            key, value = (part.strip() for part in term.replace("==", "=").split("=", 1))
            checks.append(lambda labels, key=key, value=value:  # type: ignore[misc]
                          labels.get(key) == value)
        elif re.fullmatch(r"!\s*[^\s!=()]+", term):
            key = term[1:].strip()
            checks.append(lambda labels, key=key: key not in labels)  # type: ignore[misc]
        elif re.fullmatch(r"[^\s!=()]+", term):
            checks.append(lambda labels, key=term: key in labels)  # type: ignore[misc]
        else:
            raise bad_request(f"unable to parse requirement: {term!r} in labelSelector "
                              f"{selector!r}")
    return lambda obj: all(check((obj.get("metadata") or {}).get("labels") or {})
                           for check in checks)


def field_selector(selector: str) -> Selector:
    checks: list[Callable[[Obj], bool]] = []
    for term in _terms(selector):
        negated = "!=" in term
        field, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
        field, value = field.strip(), value.strip()
        if field not in _FIELDS:
            raise bad_request(f'"{field}" is not a known field selector: only '
                              f'"{_FIELDS[0]}", "{_FIELDS[1]}"')
        key = field.split(".")[1]
        checks.append(lambda obj, key=key, value=value, negated=negated:  # type: ignore[misc]
                      (str((obj.get("metadata") or {}).get(key) or "") == value) != negated)
    return lambda obj: all(check(obj) for check in checks)


def both(labels: str, fields: str) -> Selector:
    by_label, by_field = label_selector(labels), field_selector(fields)
    return lambda obj: by_label(obj) and by_field(obj)
