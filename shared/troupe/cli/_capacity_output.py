"""How `troupe capacity plan` shows its answer: rich tables, or one JSON object.

Kept apart from the command so that the command reads as what it does (measure, plan,
apply) and the formats can grow columns without burying it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from troupe.capacity import ServicePlan, TriggerPlan, WaitSLO

if TYPE_CHECKING:  # the kubernetes client behind it is slow to import
    from ._capacity_apply import Applied


def format_seconds(value: float) -> str:
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"


def plans_json(plans: list[ServicePlan], triggers: list[TriggerPlan],
               applied: list[Applied] | None) -> dict[str, Any]:
    by_service = {a.service: a for a in applied or []}
    services = []
    for plan in plans:
        row = _plan_json(plan)
        done = by_service.get(plan.measured.service)
        row["applied"] = None if done is None else {"patch": done.patch, "note": done.note}
        services.append(row)
    return {"services": services, "triggers": [_trigger_json(t) for t in triggers]}


def _plan_json(plan: ServicePlan) -> dict[str, Any]:
    m, r = plan.measured, plan.recommendation
    return {
        "service": m.service, "namespace": m.namespace, "slo": str(plan.slo),
        "arrival_rate": m.arrival_rate, "peak_arrival_rate": m.peak_arrival_rate,
        "service_time_s": m.service_time, "service_scv": m.service_scv,
        "instances": m.instances, "container_concurrency": m.container_concurrency,
        "servers": plan.servers, "utilization": plan.utilization,
        "predicted_mean_wait_s": plan.predicted_mean_wait,
        "predicted_p95_wait_s": plan.predicted_p95_wait,
        "measured_mean_wait_s": m.measured_mean_wait, "measured_p95_wait_s": m.measured_p95_wait,
        "recommended": None if r is None else {
            "servers": r.servers, "min_scale": r.min_scale, "max_scale": r.max_scale,
            "target": r.target, "container_concurrency": r.container_concurrency},
        "notes": list(plan.notes),
    }


def _trigger_json(plan: TriggerPlan) -> dict[str, Any]:
    m = plan.measured
    return {
        "trigger": m.trigger, "namespace": m.namespace, "broker": m.broker,
        "subscriber": m.subscriber, "ordered": m.ordered, "slo": str(plan.slo),
        "delivery_rate": m.delivery_rate, "peak_delivery_rate": m.peak_delivery_rate,
        "delivery_time_s": m.delivery_time, "delivery_scv": m.delivery_scv,
        "in_flight": plan.in_flight, "partitions": plan.partitions, "notes": list(plan.notes),
    }


def print_plans(plans: list[ServicePlan], triggers: list[TriggerPlan],
                applied: list[Applied] | None, slo: WaitSLO) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"capacity for {slo}; waits are predicted / measured")
    for column in ("service", "rate/s", "service time", "SCV", "c", "rho", "mean wait",
                   "p95 wait", "min", "max", "target", "cc"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for plan in plans:
        m, r = plan.measured, plan.recommendation
        table.add_row(
            m.service, _maybe(m.arrival_rate, "{:.3g}"), _maybe(m.service_time, None),
            _maybe(m.service_scv, "{:.2f}"), _maybe(plan.servers, "{}"),
            _maybe(plan.utilization, "{:.0%}"),
            f"{_maybe(plan.predicted_mean_wait, None)} / {_maybe(m.measured_mean_wait, None)}",
            f"{_maybe(plan.predicted_p95_wait, None)} / {_maybe(m.measured_p95_wait, None)}",
            *((str(r.min_scale), str(r.max_scale), str(r.target), str(r.container_concurrency))
              if r else ("-",) * 4))
    console.print(table)
    console.print("min, max, target, cc: the recommended min-scale, max-scale, target and "
                  "containerConcurrency")
    for plan in plans:
        for note in plan.notes:
            console.print(f"{plan.measured.service}: {note}", markup=False)
    if triggers:
        console.print(_trigger_table(triggers, slo))
        for trigger in triggers:
            for note in trigger.notes:
                console.print(f"{trigger.measured.trigger}: {note}", markup=False)
    for done in applied or []:
        console.print(f"{done.service}: {done.note}", markup=False)


def _trigger_table(triggers: list[TriggerPlan], slo: WaitSLO) -> Any:
    from rich.table import Table

    table = Table(title=f"Kafka partitions per Trigger, at the peak rate, for {slo}")
    for column in ("trigger", "subscriber", "order", "peak/s", "delivery time", "in flight",
                   "partitions"):
        table.add_column(column, justify="left" if column in ("trigger", "subscriber",
                                                              "order") else "right")
    for plan in triggers:
        m = plan.measured
        table.add_row(m.trigger, m.subscriber, "ordered" if m.ordered else "unordered",
                      _maybe(m.peak_delivery_rate, "{:.3g}"), _maybe(m.delivery_time, None),
                      _maybe(plan.in_flight, "{:.2g}"), _maybe(plan.partitions, "{}"))
    return table


def _maybe(value: float | None, pattern: str | None) -> str:
    if value is None:
        return "-"
    return format_seconds(value) if pattern is None else pattern.format(value)
