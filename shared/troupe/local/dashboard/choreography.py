"""The choreography as deployed: functions, the event types they consume and emit, and the
live Triggers that route one to the other; the picture of the README's diagram, drawn
from the object store instead of by hand.

What a function consumes is its own declaration (declarations.py); what it emits is the
vocabulary's table (troupe.events). A Trigger selects the types its filter passes, judged
on an event of that type from its producer. It is marked when it is not Ready, and a type
that no Trigger selects is marked as consumed by nobody.
"""

from __future__ import annotations

from typing import Any

from troupe.events import VOCABULARY, is_known, resolve
from troupe.local.controlplane.kinds import KAFKASOURCE, PINGSOURCE, SERVICE, TRIGGER, Obj
from troupe.local.controlplane.objects import ObjectStore
from troupe.local.dashboard.declarations import Declarations
from troupe.local.dashboard.http import Request, Response, Route, json_response
from troupe.local.errors import LocalError
from troupe.local.eventing.broker.filters import EventFilter, compile_trigger_filter


def choreography(objects: ObjectStore, declarations: Declarations) -> dict[str, Any]:
    services = objects.list(SERVICE)
    images = {_name(s): _image(s) for s in services}
    declared = declarations.get(image for image in images.values() if image)
    functions: list[dict[str, Any]] = []
    for service in services:
        name = _name(service)
        declaration = declared.get(images[name] or "")
        functions.append({
            "name": name, "ready": _ready(service)[0],
            "consumes": list(declaration.types) if declaration else None,
            "any": declaration.any if declaration else False,
            "declaration_error": declaration.error if declaration else None,
            "emits": [t.type for t in VOCABULARY if name in t.produced_by],
        })
    deployed = {str(f["name"]) for f in functions}
    types = _types(deployed)
    triggers = [_trigger(trigger, types) for trigger in objects.list(TRIGGER)]
    for type_name, entry in types.items():
        entry["consumers"] = [t["name"] for t in triggers if type_name in t["types"]]
        entry["unconsumed"] = not entry["consumers"]
    return {"functions": functions, "triggers": triggers, "types": list(types.values()),
            "sources": [_source(s) for s in (*objects.list(PINGSOURCE),
                                             *objects.list(KAFKASOURCE))]}


def choreography_routes(objects: ObjectStore, declarations: Declarations) -> list[Route]:
    def graph(_: Request) -> Response:
        return json_response(choreography(objects, declarations))

    return [Route.of("GET", "/api/graph", graph)]


def _types(deployed: set[str]) -> dict[str, dict[str, Any]]:
    """Every vocabulary type produced by a deployed function or from outside them."""
    types = {}
    for event_type in VOCABULARY:
        producers = list(event_type.produced_by)
        if any(p in deployed for p in producers) or not all(p in deployed for p in producers):
            types[event_type.type] = {"type": event_type.type, "short": event_type.short,
                                      "producers": producers,
                                      "outside": [p for p in producers if p not in deployed]}
    return types


def _trigger(trigger: Obj, types: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec = trigger.get("spec") or {}
    name = trigger["metadata"]["name"]
    subscriber = spec.get("subscriber") or {}
    ready, reason = _ready(trigger)
    try:
        event_filter: EventFilter | None = compile_trigger_filter(spec, f"Trigger/{name}")
    except LocalError:
        event_filter = None
    selected = [t for t, entry in types.items() if event_filter is not None
                and event_filter(_sample(t, entry["producers"]))]
    exact = ((spec.get("filter") or {}).get("attributes") or {}).get("type")
    if isinstance(exact, str) and exact not in types:
        types[exact] = {"type": exact, "short": resolve(exact).short if is_known(exact)
                        else exact, "producers": [], "outside": []}
        selected.append(exact)
    dead = ((spec.get("delivery") or {}).get("deadLetterSink") or {}).get("ref") or {}
    return {"name": name, "broker": spec.get("broker"), "ready": ready, "reason": reason,
            "subscriber": (subscriber.get("ref") or {}).get("name") or subscriber.get("uri"),
            "types": selected, "filter": spec.get("filters") or spec.get("filter") or {},
            "dead_letter_sink": dead.get("name")}


def _sample(event_type: str, producers: list[str]) -> dict[str, str]:
    producer = producers[0] if producers else "producer"
    return {"specversion": "1.0", "id": "sample", "type": event_type,
            "source": f"/troupe/{producer}", "datacontenttype": "application/json"}


def _source(source: Obj) -> dict[str, Any]:
    spec = source.get("spec") or {}
    sink = (spec.get("sink") or {}).get("ref") or {}
    return {"name": source["metadata"]["name"], "kind": source["kind"],
            "sink": sink.get("name") or (spec.get("sink") or {}).get("uri"),
            "ready": _ready(source)[0]}


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _image(service: Obj) -> str | None:
    containers = ((service.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers") or [{}]
    image = containers[0].get("image")
    return str(image) if image else None


def _ready(obj: Obj) -> tuple[bool, str]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True", str(condition.get("message") or "")
    return False, "no Ready condition yet"
