"""One delivery, from HTTP request to HTTP answer: decode, validate, de-duplicate, handle."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent

from troupe.events import (
    RUNID,
    VOCABULARY,
    EventError,
    UnknownEventTypeError,
    from_http,
    is_known,
    lineage_of,
    validate,
    with_lineage,
)
from troupe.store import Store

from .consumes import ConsumedTypes
from .context import Context
from .idempotency import ReplyLedger
from .logs import log_event
from .metrics import FunctionMetrics
from .responses import Answer, error_answer, event_answer, no_reply
from .settings import Settings

Handler = Callable[[CloudEvent, Context[Any]], CloudEvent | None]

# Metric label for requests that never became an event, and for types outside troupe's
# vocabulary (their type strings are the sender's and would grow the label set without
# bound).
UNPARSED: Final = "unparsed"
UNKNOWN: Final = "unknown"


class InvalidReplyError(RuntimeError):
    """The handler replied with an event troupe would refuse from anyone else."""


class EventDelivery:
    """Turns one request into one Answer; shared by every request of an app."""

    def __init__(
        self,
        handle: Handler,
        settings: Settings,
        metrics: FunctionMetrics,
        logger: logging.Logger,
        *,
        consumes: ConsumedTypes,
        validate_incoming: bool = True,
        deduplicate: bool = True,
    ) -> None:
        self._handle = handle
        self._settings = settings
        self._metrics = metrics
        self._logger = logger
        self._handler_logger = logging.getLogger(f"troupe.function.{settings.service}")
        self.consumes = consumes
        self._validate_incoming = validate_incoming
        self._deduplicate = deduplicate
        self._ledger = ReplyLedger(settings, lambda: self.store)
        self._store: Store | None = None
        self._store_lock = threading.Lock()

    @property
    def store(self) -> Store:
        """Opened on the first event, once: health probes never touch storage."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = Store.from_settings(self._settings)
        return self._store

    def deliver(self, headers: Mapping[str, str], body: bytes) -> Answer:
        started = time.perf_counter()
        event: CloudEvent | None = None
        try:
            event = from_http(headers, body)
            answer = self._answer(event)
        except Exception as error:
            answer = error_answer(error, detail=traceback.format_exc())
        self._account(event, answer, time.perf_counter() - started)
        return answer

    def refuse(self, error: Exception) -> Answer:
        """The answer to a request refused before it became an event (its body was not
        even read), counted and logged as every delivery is."""
        answer = error_answer(error)
        self._account(None, answer, 0.0)
        return answer

    def _answer(self, event: CloudEvent) -> Answer:
        self.consumes.check(event.get_type())
        if self._validate_incoming and is_known(event.get_type()):
            validate(event)
        if not self._deduplicate:
            return self._run_handler(event)
        return self._ledger.deliver_once(event.get_source(), event.get_id(),
                                         lambda: self._run_handler(event))

    def _run_handler(self, event: CloudEvent) -> Answer:
        context: Context[Any] = Context(
            settings=self._settings, store=self.store, event=event, logger=self._handler_logger
        )
        started = time.perf_counter()
        try:
            reply = self._handle(event, context)
            return self._reply_answer(reply, event)
        except Exception as error:
            return error_answer(error, detail=traceback.format_exc())
        finally:
            self._metrics.observe_handler(event.get_type(), time.perf_counter() - started)

    def _reply_answer(self, reply: object, cause: CloudEvent) -> Answer:
        if reply is None:
            return no_reply()
        if not isinstance(reply, CloudEvent):
            raise TypeError(
                f"the handler returned a {type(reply).__name__}; return a CloudEvent "
                "(ctx.reply(...)) or None"
            )
        reply = with_lineage(reply, cause)
        try:
            self._check_reply(reply)
        except EventError as error:
            # The sender did nothing wrong: a bad reply is the function's bug (500).
            raise InvalidReplyError(f"the handler's reply is invalid: {error}") from error
        return event_answer(reply)

    def _check_reply(self, reply: CloudEvent) -> None:
        """A reply is of a troupe type with valid data; an app that consumes any type may
        also answer with types of its own (an echo, a bridge)."""
        if is_known(reply.get_type()):
            validate(reply)
        elif not self.consumes.any:
            raise UnknownEventTypeError(reply.get_type(), [t.short for t in VOCABULARY])

    def _account(self, event: CloudEvent | None, answer: Answer, seconds: float) -> None:
        if event is None:
            label = UNPARSED
        elif is_known(event.get_type()) or self.consumes.any:
            label = event.get_type()
        else:
            label = UNKNOWN
        self._metrics.count_event(label, answer.outcome)
        fields: dict[str, Any] = {
            "service": self._settings.service,
            "id": event.get_id() if event else None,
            "type": event.get_type() if event else None,
            "source": event.get_source() if event else None,
            "runid": lineage_of(event)[RUNID] if event else None,
            "outcome": answer.outcome,
            "status": answer.status,
            "duration_ms": round(seconds * 1000, 3),
        }
        if answer.status >= 400 and answer.detail:
            fields["error"] = answer.detail
        log_event(self._logger, answer.status, fields)
