"""Which waiting requests go first in the activator: the `troupe.dev/priority` annotation.

On a revision template, a comma-separated list of rules `ATTRIBUTE=VALUE:LEVEL`:

    troupe.dev/priority: "type=dev.troupe.training.requested:high, source=/batch:low"

- ATTRIBUTE is a CloudEvents attribute or extension name (lowercase letters and digits),
  read from the request's `ce-` header (binary mode) or from the JSON envelope
  (structured mode, `application/cloudevents+json`).
- VALUE must equal the attribute's value exactly; it may hold `:` (the level is after the
  last one) but not `,`.
- LEVEL is `high`, `normal` or `low`. The first rule that matches gives the level; a
  request that matches none, or is not a CloudEvent, is `normal`.

Requests waiting for a free instance are served by level, and in order of arrival within
a level. Only the activator's queue is reordered: the Broker's dispatch and delivery are
untouched. The pool promotes a request that would otherwise wait past its SLO (pool.py),
so that no level starves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

HIGH, NORMAL, LOW = 0, 1, 2
LEVELS: Final = {"high": HIGH, "normal": NORMAL, "low": LOW}
PRIORITY_ANNOTATION: Final = "troupe.dev/priority"
_RULE: Final = re.compile(r"(?P<attribute>[a-z0-9]+)=(?P<value>[^,]+):(?P<level>[a-z]+)")
_EXAMPLE: Final = '"type=dev.troupe.training.requested:high"'


class PrioritySyntaxError(ValueError):
    """The annotation is not a list of ATTRIBUTE=VALUE:LEVEL rules; says what to write."""


@dataclass(frozen=True)
class PriorityRule:
    attribute: str
    value: str
    level: int


@dataclass(frozen=True)
class PriorityRules:
    rules: tuple[PriorityRule, ...] = ()

    @classmethod
    def parse(cls, text: str) -> PriorityRules:
        rules = []
        for part in text.split(","):
            match = _RULE.fullmatch(part.strip())
            if match is None:
                raise PrioritySyntaxError(
                    f"{part.strip()!r} is not a rule ATTRIBUTE=VALUE:LEVEL: write e.g. {_EXAMPLE}, "
                    "rules separated by commas")
            level = LEVELS.get(match["level"])
            if level is None:
                raise PrioritySyntaxError(
                    f"{match['level']!r} in {part.strip()!r} is not a level: use "
                    f"{', '.join(LEVELS)}")
            rules.append(PriorityRule(match["attribute"], match["value"].strip(), level))
        return cls(tuple(rules))

    def level_of(self, header_items: Iterable[tuple[str, str]], body: bytes) -> int:
        """The level of a request, from its CloudEvent attributes; NORMAL if none match."""
        if not self.rules:
            return NORMAL
        headers = {name.lower(): value for name, value in header_items}
        envelope = _structured(headers, body)
        for rule in self.rules:
            if envelope is not None:
                value = envelope.get(rule.attribute)
                found = value if isinstance(value, str) else None
            else:
                header = headers.get(f"ce-{rule.attribute}")
                # The HTTP binding percent-encodes header values outside printable ASCII.
                found = unquote(header) if header is not None else None
            if found == rule.value:
                return rule.level
        return NORMAL


def _structured(headers: Mapping[str, str], body: bytes) -> dict[str, object] | None:
    """The JSON envelope of a structured-mode event, else None."""
    if not (headers.get("content-type") or "").startswith("application/cloudevents+json"):
        return None
    try:
        envelope = json.loads(body)
    except ValueError:
        return {}  # not JSON: matches no rule, and the function answers it 400
    return envelope if isinstance(envelope, dict) else {}
