"""`troupe drift backtest`: the monitor's own drift detectors on a user's history.

Settings come from the same environment variables as the monitor's (TROUPE_CONCEPT_ARL0,
TROUPE_CONCEPT_DROP, TROUPE_FEATURE_ARL0, TROUPE_FEATURE_BLOCK, TROUPE_BASELINE_BINS), so
a backtest answers for the configuration the monitor will run with.
"""

from __future__ import annotations

from pathlib import Path

import click

from troupe.cli import cli
from troupe.cli._common import echo_json


@cli.group()
def drift() -> None:
    """Drift detection: how the monitor's detectors judge a stream."""


@drift.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--reference-rows", type=int, default=500, show_default=True,
              help="The first N rows are the reference: expected accuracy and feature "
                   "distributions.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def backtest(file: Path, reference_rows: int, as_json: bool) -> None:
    """Replay FILE, a CSV in time order with the columns label and prediction (and
    optionally numeric features), and print every alarm the detectors would raise."""
    import pandas as pd

    from troupe.function.settings import SettingsError
    from troupe.ml.backtest import HistoryError, backtest
    from troupe.ml.detectors import DetectorSettings

    try:
        settings = DetectorSettings.from_env()
    except SettingsError as error:
        raise click.ClickException(f"{error}; fix the variable or unset it") from None
    try:
        frame = pd.read_csv(file)
    except FileNotFoundError:
        raise click.ClickException(f"{file} does not exist: give the path of a CSV") from None
    except pd.errors.EmptyDataError:
        raise click.ClickException(
            f"{file} is empty: a history needs a header line with label and prediction"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        raise click.ClickException(f"{file} is not a readable CSV: {error}") from None
    try:
        result = backtest(frame, reference_rows, settings)
    except HistoryError as error:
        raise click.ClickException(f"{file}: {error}") from None
    if as_json:
        echo_json({"rows": result.rows, "alarms": [
            {"kind": a.kind, "test": a.test, "index": a.index} for a in result.alarms]})
        return
    click.echo(f"{file}: {result.rows} rows; the first {result.reference_rows} are the "
               f"reference (accuracy {result.expected_accuracy:.4f}); features tested: "
               f"{', '.join(result.features) or 'none'}")
    if result.ignored:
        click.echo(f"not tested (not numeric, or empty in the reference): "
                   f"{', '.join(result.ignored)}")
    for alarm in result.alarms:
        what = (f"accuracy {alarm.detail['accuracy']:.4f} over the last "
                f"{alarm.detail['samples']} labels" if alarm.kind == "concept" else
                f"feature {alarm.detail['feature']}, p = {alarm.detail['p_value']:.3g}, "
                f"PSI {alarm.detail['psi']:.3f}")
        click.echo(f"row {alarm.index}: {alarm.kind} alarm from {alarm.test} "
                   f"(statistic {alarm.statistic:.4g}, bound {alarm.threshold:.4g}): {what}")
    if not result.alarms:
        click.echo("no alarm")
