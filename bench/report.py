"""Every figure is printed beside the baseline it was measured against in the same run.

The machines are noisy, so absolute numbers alone mean little; the ratio to a floor
measured seconds earlier on the same machine is what a reader can compare across runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    benchmark: str  # e.g. dispatch
    name: str  # e.g. throughput, 1 trigger
    value: float
    unit: str  # events/s, ms, MiB
    baseline_name: str  # e.g. raw kafka-python produce+consume
    baseline: float  # the same unit, measured in the same run

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


def render(figures: list[Figure]) -> str:
    headers = ("benchmark", "figure", "value", "baseline", "baseline value", "ratio")
    rows = [
        (
            f.benchmark,
            f.name,
            f"{f.value:,.2f} {f.unit}",
            f.baseline_name,
            f"{f.baseline:,.2f} {f.unit}",
            f"{f.ratio:.2f}x",
        )
        for f in figures
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)
