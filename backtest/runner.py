"""Backtests: scenarios (or stored readings) through the analytics engine, scored.

``run_scenario`` steps a scenario's simulated city one minute at a time and
does what the service does with live data: it evaluates the rules at the start
of each minute (the service ticks every second, so it often judges a minute
before that minute's readings are in), takes the minute's readings into
:meth:`Engine.ingest`, and evaluates again at the minute's last instant (so the
current one-minute slot is the one just filled).  No wall
clock is involved, so a day takes seconds.  ``replay``
does the same with readings read back from InfluxDB (``--start``/``--end``);
those have no labels, so only the alerts are reported.

Detection times are quantised to the evaluation minute (at most 60 s late),
which is below every reporting interval.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from analytics.engine import Engine
from analytics.stored import readings_from_series
from backtest import scenarios, scoring
from backtest.scenarios.labels import ALERT_KINDS, Label
from deltasense import schema
from deltasense.alerts import AlertEvent
from deltasense.contract import Kind, Reading
from deltasense.influx import InfluxClient, InfluxError, quote_ident
from deltasense.runtime import DEFAULT_UTC_OFFSET_MIN, now_ms, utc_label
from deltasense.settings import Settings, utc_offset_tz
from deltasense.thresholds import Thresholds

_LOG = logging.getLogger(__name__)

MINUTE_MS: Final = 60_000
MAX_REPLAY_MS: Final = 31 * 86_400_000
REPLAY_CHUNK_MS: Final = 3_600_000
_RELATIVE: Final = re.compile(r"-(\d+)([smhd])")
_UNIT_MS: Final = {"s": 1000, "m": MINUTE_MS, "h": 3_600_000, "d": 86_400_000}

Progress = Callable[[int, int], None]  # (done, total) in simulated minutes


class BacktestError(ValueError):
    """Bad arguments or an unusable data source; the message is meant for a user."""


@dataclass
class Result:
    """What one backtest run produced."""

    source: str  # scenario name, or "influxdb"
    seed: int | None
    start_ms: int
    end_ms: int
    readings: int = 0
    evaluations: int = 0
    events: list[AlertEvent] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    labelled: bool = True
    elapsed_s: float = 0.0

    @property
    def alerts(self) -> list[scoring.Alert]:
        return scoring.fold(self.events)


# --- times ---------------------------------------------------------------------------------
def parse_time(text: str, now_ms: int, utc_offset_min: int = DEFAULT_UTC_OFFSET_MIN) -> int:
    """A time for ``--start``/``--end`` in ms: ISO 8601 (naive = the site's local
    time), epoch seconds or milliseconds, ``now``, or ``-30m``/``-6h``/``-2d`` before now."""
    value = text.strip()
    if value == "now":
        return now_ms
    if m := _RELATIVE.fullmatch(value):
        return now_ms - int(m.group(1)) * _UNIT_MS[m.group(2)]
    if value.isdigit():
        number = int(value)
        return number if number >= 10**11 else number * 1000  # ms since 1973, else seconds
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BacktestError(
            f"cannot read time {text!r}: use ISO 8601 "
            f"(2024-11-17T18:00, naive = {utc_label(utc_offset_min)}), "
            "epoch seconds or ms, 'now', or -30m / -6h / -2d"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=utc_offset_tz(utc_offset_min))
    return int(parsed.timestamp() * 1000)


def check_window(start_ms: int, end_ms: int, now_ms: int) -> None:
    if end_ms <= start_ms:
        raise BacktestError("--end must be after --start")
    if end_ms - start_ms > MAX_REPLAY_MS:
        raise BacktestError(f"the window is longer than {MAX_REPLAY_MS // 86_400_000} days")
    if start_ms > now_ms:
        raise BacktestError("--start lies in the future")


def iso(ms: int | None, utc_offset_min: int = DEFAULT_UTC_OFFSET_MIN) -> str:
    """``ms`` as the site's local time (its offset comes from the settings)."""
    if ms is None:
        return "-"
    tz = utc_offset_tz(utc_offset_min)
    return datetime.fromtimestamp(ms / 1000, tz=tz).strftime("%Y-%m-%d %H:%M:%S")


# --- scenario runs ---------------------------------------------------------------------------
def run_scenario(
    name: str,
    seed: int,
    thresholds: Thresholds,
    *,
    start_ms: int | None = None,
    site: str = "baclieu",
    utc_offset_min: int = DEFAULT_UTC_OFFSET_MIN,
    on_progress: Progress | None = None,
) -> Result:
    """Run ``name`` through a fresh engine; raises ``UnknownScenarioError``."""
    started = time.perf_counter()
    world = scenarios.build(name, seed, start_ms=start_ms, site=site, thresholds=thresholds)
    cfg = world.config
    engine = Engine(
        with_lamp_register(thresholds, world.lamp_ratings()), utc_offset_min=utc_offset_min
    )
    announce_stations(engine, cfg)
    result = Result(cfg.name, seed, cfg.start_ms, cfg.end_ms)
    for minute in range(cfg.minutes):
        now_ms, readings = world.step()
        result.events.extend(engine.evaluate(now_ms - MINUTE_MS))  # before the minute's readings
        engine.ingest(readings)
        result.events.extend(engine.evaluate(now_ms - 1))  # the minute's last instant
        result.readings += len(readings)
        result.evaluations += 2
        if on_progress is not None:
            on_progress(minute + 1, cfg.minutes)
    result.labels = world.labels()
    result.elapsed_s = time.perf_counter() - started
    return result


def with_lamp_register(thresholds: Thresholds, ratings: dict[str, float]) -> Thresholds:
    """The scenario city's lamp register as the site's rated powers, unless the
    thresholds already say what the lamps are rated (a site file wins)."""
    lighting = thresholds.lighting
    if not ratings or lighting.rated_w is not None or lighting.lamps_rated_w:
        return thresholds
    return thresholds.model_copy(
        update={"lighting": lighting.model_copy(update={"lamps_rated_w": dict(ratings)})}
    )


def announce_stations(engine: Engine, cfg: scenarios.Config) -> None:
    """What the devices' retained meta tells the live service: position, reporting
    interval, and for water nodes whether they sit in a drain or on a canal."""
    stations = scenarios.stations(cfg)
    for spec in cfg.devices:
        engine.set_meta(
            spec.id,
            spec.district,
            spec.kind,
            lat=spec.lat,
            lon=spec.lon,
            interval_s=scenarios.INTERVAL_S[spec.kind],
            station=stations.get(spec.id),
        )


# --- replay from InfluxDB ---------------------------------------------------------------------
# Names from the schema, quoted; the measurement is filled in per kind.
REPLAY_QUERY: Final = (
    f"SELECT * FROM {{measurement}} WHERE {quote_ident(schema.SITE)} = $site "  # noqa: S608
    "AND time >= $start AND time < $end "
    f"GROUP BY {quote_ident(schema.DEVICE)}, {quote_ident(schema.DISTRICT)}"
)


async def stored_readings(
    db: InfluxClient, site: str, start_ms: int, end_ms: int
) -> AsyncIterator[tuple[int, int, list[Reading]]]:
    """Stored readings of every kind in ``[start_ms, end_ms)``, an hour at a time:
    (chunk start, chunk end, readings in time order).  Chunks start on whole
    minutes after the first."""
    first = start_ms - start_ms % MINUTE_MS
    chunk_start = first
    while chunk_start < end_ms:
        chunk_end = min(end_ms, chunk_start + REPLAY_CHUNK_MS)
        chunk: list[Reading] = []
        params = {
            "site": site,
            "start": max(start_ms, chunk_start) * 1_000_000,
            "end": chunk_end * 1_000_000,
        }
        for measurement in schema.READING_MEASUREMENTS:
            q = REPLAY_QUERY.format(measurement=quote_ident(measurement))
            chunk += readings_from_series(
                Kind(measurement), await db.query(q, params=params), site, as_history=False
            )
        chunk.sort(key=lambda r: r.ts_ms)
        yield chunk_start, chunk_end, chunk
        chunk_start = chunk_end


async def replay(
    db: InfluxClient,
    site: str,
    start_ms: int,
    end_ms: int,
    thresholds: Thresholds,
    *,
    utc_offset_min: int = DEFAULT_UTC_OFFSET_MIN,
    on_progress: Progress | None = None,
) -> Result:
    """Stored readings from ``start_ms`` to ``end_ms`` through a fresh engine: each
    minute's readings in, then an evaluation at the minute's end (empty minutes
    too, so time-based rules tick as they would live)."""
    from analytics.service import refill_meta, refill_stations

    started = time.perf_counter()
    engine = Engine(thresholds, utc_offset_min=utc_offset_min)
    result = Result("influxdb", None, start_ms, end_ms, labelled=False)
    first = start_ms - start_ms % MINUTE_MS
    total = -(-(end_ms - first) // MINUTE_MS)
    try:
        await refill_stations(db, engine, site)
        await refill_meta(db, engine, site)
        async for chunk_start, chunk_end, chunk in stored_readings(db, site, start_ms, end_ms):
            i = 0
            for minute_end in range(chunk_start + MINUTE_MS, chunk_end + MINUTE_MS, MINUTE_MS):
                j = i
                while j < len(chunk) and chunk[j].ts_ms < minute_end:
                    j += 1
                result.events.extend(engine.evaluate(minute_end - MINUTE_MS))
                engine.ingest(chunk[i:j])
                result.readings += j - i
                i = j
                result.events.extend(engine.evaluate(minute_end - 1))
                result.evaluations += 2
                if on_progress is not None:
                    on_progress(min(result.evaluations // 2, total), total)
    except InfluxError as exc:
        raise BacktestError(f"InfluxDB: {exc}") from exc
    result.elapsed_s = time.perf_counter() - started
    return result


# --- the report ------------------------------------------------------------------------------
def report(result: Result, tolerance_ms: int = scoring.DEFAULT_TOLERANCE_MS) -> dict[str, Any]:
    """The JSON report: scores per alert kind, rule and kind of event; alerts; labels."""
    alerts = result.alerts
    outcome = scoring.score(alerts, result.labels, tolerance_ms)
    alert_rows = []
    for a, matched, flap in zip(alerts, outcome.alert_matches, outcome.alert_flaps, strict=True):
        row = a.to_json()
        if result.labelled:
            row["matches"] = sorted({result.labels[i].what for i in matched})
            row["flap"] = flap
        alert_rows.append(row)
    kinds: dict[str, Any] = {}
    for kind in ALERT_KINDS:
        entry = outcome.kinds[kind].to_json()
        if not result.labelled:  # no truth: nothing is known to be false or missed
            for key in ("events", "detected", "missed", "false_alerts", "flaps"):
                entry[key] = None
            entry["precision"] = entry["recall"] = None
        entry["alerts"] = [r for r in alert_rows if r["kind"] == kind]
        kinds[kind] = entry
    out: dict[str, Any] = {
        "source": result.source,
        "seed": result.seed,
        "start": result.start_ms,
        "end": result.end_ms,
        "minutes": (result.end_ms - result.start_ms) // MINUTE_MS,
        "readings": result.readings,
        "evaluations": result.evaluations,
        "elapsed_s": round(result.elapsed_s, 3),
        "labelled": result.labelled,
        "tolerance_s": tolerance_ms / 1000,
        "total_alerts": len(alerts),
        "kinds": kinds,
        "rules": {rule: s.to_json() for rule, s in sorted(outcome.rules.items())},
        "alerts": alert_rows,
    }
    if result.labelled:
        out["events"] = {
            what: {
                **s.to_json(),
                # alerts are scored per kind and rule; per event only detection counts
                **dict.fromkeys(("raised", "false_alerts", "flaps", "precision"), None),
            }
            for what, s in sorted(outcome.whats.items())
        }
        out["labels"] = [
            {**label.to_json(), "delay_s": delay}
            for label, delay in zip(result.labels, outcome.label_delay_s, strict=True)
        ]
    return out


def format_cell(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if pct:
        return f"{value * 100:.0f} %"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def text_tables(rep: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the tables the CLI prints."""
    cols = [
        "events",
        "det",
        "miss",
        "alerts",
        "false",
        "flaps",
        "prec",
        "recall",
        "med s",
        "max s",
        "onset s",
    ]

    def row(name: str, s: dict[str, Any]) -> list[str]:
        return [
            name,
            format_cell(s["events"]),
            format_cell(s["detected"]),
            format_cell(s["missed"]),
            format_cell(s["raised"]),
            format_cell(s["false_alerts"]),
            format_cell(s["flaps"]),
            format_cell(s["precision"], pct=True),
            format_cell(s["recall"], pct=True),
            format_cell(s["delay_median_s"]),
            format_cell(s["delay_worst_s"]),
            format_cell(s["onset_delay_median_s"]),
        ]

    tables = [("per alert kind", ["kind", *cols], [row(k, s) for k, s in rep["kinds"].items()])]
    if rep["rules"]:
        tables.append(("per rule", ["rule", *cols], [row(k, s) for k, s in rep["rules"].items()]))
    if rep.get("events"):
        tables.append(
            ("per labelled event", ["event", *cols], [row(k, s) for k, s in rep["events"].items()])
        )
    return tables


# --- HTML timeline ---------------------------------------------------------------------------
_KIND_COLOURS: Final = {
    "storm": "#6a3d9a",
    "flood": "#1f78b4",
    "energy": "#e6a100",
    "health": "#d7301f",
}


def html_timeline(rep: dict[str, Any], utc_offset_min: int = DEFAULT_UTC_OFFSET_MIN) -> str:
    """A self-contained HTML page (inline SVG, no scripts, no network): one row per
    subject, labelled events as pale bars, alerts as solid bars coloured by kind; times
    in the site's local time."""

    def when(ms: int | None) -> str:
        return iso(ms, utc_offset_min)

    start, end = int(rep["start"]), int(rep["end"])
    span = max(1, end - start)
    width, left, row_h = 1100, 230, 16
    rows: dict[str, list[str]] = {}

    def x(ms: int) -> float:
        return left + (min(max(ms, start), end) - start) / span * (width - left - 10)

    for label in rep.get("labels", []):
        rows.setdefault(f"{label['kind']} · {label['subject']}", [])
    for alert in rep["alerts"]:
        rows.setdefault(f"{alert['kind']} · {alert['subject']}", [])
    order = sorted(rows)
    index = {name: i for i, name in enumerate(order)}
    shapes: list[str] = []
    for label in rep.get("labels", []):
        y = 30 + index[f"{label['kind']} · {label['subject']}"] * row_h
        colour = _KIND_COLOURS.get(label["kind"], "#888")
        opacity = 0.25 if label["expected"] else 0.1
        title = html.escape(
            f"label {label['what']} {label['subject']} {when(label['start'])} → {when(label['end'])}"
            + ("" if label["expected"] else " (tolerated)")
        )
        shapes.append(
            f'<rect x="{x(label["start"]):.1f}" y="{y}" width="{max(1.0, x(label["end"]) - x(label["start"])):.1f}" '
            f'height="{row_h - 2}" fill="{colour}" fill-opacity="{opacity}"><title>{title}</title></rect>'
        )
    for alert in rep["alerts"]:
        y = 30 + index[f"{alert['kind']} · {alert['subject']}"] * row_h + 4
        colour = _KIND_COLOURS.get(alert["kind"], "#888")
        a_end = alert["end"] if alert["end"] is not None else end
        stroke = ' stroke="#000" stroke-dasharray="2"' if alert.get("matches") == [] else ""
        title = html.escape(
            f"alert {alert['rule']} {alert['subject']} {alert['severity']} "
            f"{when(alert['start'])} → {when(alert['end'])}"
            + (" FALSE" if alert.get("matches") == [] else "")
            + (" FLAP" if alert.get("flap") else "")
        )
        shapes.append(
            f'<rect x="{x(alert["start"]):.1f}" y="{y}" width="{max(2.0, x(a_end) - x(alert["start"])):.1f}" '
            f'height="{row_h - 10}" fill="{colour}"{stroke}><title>{title}</title></rect>'
        )
    names = [
        f'<text x="4" y="{30 + i * row_h + 12}" font-size="11">{html.escape(name)}</text>'
        for i, name in enumerate(order)
    ]
    ticks = []
    hours = max(1, span // 3_600_000)
    step = 3_600_000 * max(1, hours // 12)
    t = start - start % 3_600_000 + 3_600_000
    while t < end:
        ticks.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="20" y2="{30 + len(order) * row_h}" stroke="#ddd"/>'
            f'<text x="{x(t):.1f}" y="14" font-size="10" text-anchor="middle">{when(t)[11:16]}</text>'
        )
        t += step
    height = 40 + len(order) * row_h
    title = html.escape(f"DeltaSense backtest: {rep['source']} (seed {rep['seed']})")
    summary = " · ".join(
        f"{kind}: {s['detected']}/{s['events']} detected, {s['raised']} alerts"
        for kind, s in rep["kinds"].items()
    )
    return (
        "<!doctype html><html lang='en'><meta charset='utf-8'>"
        f"<title>{title}</title>"
        "<body style='font-family:sans-serif;margin:16px'>"
        f"<h1 style='font-size:18px'>{title}</h1>"
        f"<p>{html.escape(when(start))} → {html.escape(when(end))} ({utc_label(utc_offset_min)}) · {html.escape(summary)}</p>"
        "<p style='font-size:12px'>pale bars: labelled events (fainter: tolerated); "
        "solid bars: alerts; dashed outline: false alert.</p>"
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>"
        + "".join(ticks)
        + "".join(names)
        + "".join(shapes)
        + "</svg></body></html>\n"
    )


# --- the `deltasense backtest` command -----------------------------------------------------------
def scenario_list() -> list[tuple[str, str, float]]:
    """(name, summary, hours) of every scenario."""
    out = []
    for name in scenarios.names():
        spec = scenarios.get(name)
        hours = spec.build(1, None, "baclieu").minutes / 60
        out.append((name, spec.summary, hours))
    return out


def validate_args(
    scenario: str | None, start: str | None, end: str | None, seed: int, tolerance_min: float
) -> None:
    if scenario is not None and (start is not None or end is not None):
        raise BacktestError("give either --scenario or --start/--end, not both")
    if scenario is None and (start is None) != (end is None):
        raise BacktestError("--start and --end go together")
    if scenario is None and start is None:
        raise BacktestError("give --scenario NAME (see --list) or --start T --end T")
    if scenario is not None and scenario not in scenarios.names():
        raise BacktestError(str(scenarios.UnknownScenarioError(scenario)))
    if seed < 0:
        raise BacktestError("--seed must be >= 0")
    if not 0 <= tolerance_min <= 24 * 60:
        raise BacktestError("--tolerance must be between 0 and 1440 minutes")


def run_cli(
    *,
    scenario: str | None,
    seed: int,
    start: str | None,
    end: str | None,
    json_out: bool,
    html_path: Path | None,
    tolerance_min: float,
    settings: Settings,
    out: Console,
    err: Console,
) -> dict[str, Any]:
    """Everything ``deltasense backtest`` does after parsing; raises :class:`BacktestError`."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from analytics.thresholds import load_thresholds
    from deltasense.influx import influx_client
    from deltasense.thresholds import ThresholdsError

    validate_args(scenario, start, end, seed, tolerance_min)
    try:
        thresholds = load_thresholds(settings.thresholds_file)
    except ThresholdsError as exc:
        raise BacktestError(str(exc)) from exc
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "simulated minutes",
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    with progress:
        if scenario is not None:
            task = progress.add_task(f"{scenario} (seed {seed})", total=None)
            result = run_scenario(
                scenario,
                seed,
                thresholds,
                site=settings.site,
                utc_offset_min=settings.utc_offset_min,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        else:
            assert start is not None and end is not None  # validate_args
            now = now_ms()
            offset = settings.utc_offset_min
            start_ms, end_ms = parse_time(start, now, offset), parse_time(end, now, offset)
            check_window(start_ms, end_ms, now)
            task = progress.add_task("replaying InfluxDB", total=None)

            async def go() -> Result:
                async with influx_client(settings, logger=_LOG) as db:
                    if not await db.ping():
                        raise BacktestError(
                            f"InfluxDB at {settings.influx_base_url} does not answer"
                        )
                    return await replay(
                        db,
                        settings.site,
                        start_ms,
                        end_ms,
                        thresholds,
                        utc_offset_min=settings.utc_offset_min,
                        on_progress=lambda d, t: progress.update(task, completed=d, total=t),
                    )

            result = asyncio.run(go())
    rep = report(result, round(tolerance_min * MINUTE_MS))
    if html_path is not None:
        try:
            html_path.write_text(html_timeline(rep, settings.utc_offset_min), encoding="utf-8")
        except OSError as exc:
            raise BacktestError(f"cannot write {html_path}: {exc}") from exc
    if json_out:
        out.print_json(data=rep)
    else:
        print_report(rep, out, settings.utc_offset_min)
        if html_path is not None:
            out.print(f"timeline: {html_path}")
    return rep


def print_report(
    rep: dict[str, Any], out: Console, utc_offset_min: int = DEFAULT_UTC_OFFSET_MIN
) -> None:
    from rich.table import Table

    def when(ms: int | None) -> str:
        return iso(ms, utc_offset_min)

    source = rep["source"] if rep["seed"] is None else f"{rep['source']} (seed {rep['seed']})"
    out.print(
        f"[bold]{source}[/]: {when(rep['start'])} → {when(rep['end'])} ({utc_label(utc_offset_min)}), "
        f"{rep['readings']} readings, {rep['evaluations']} evaluations in {rep['elapsed_s']:.1f} s; "
        f"{rep['total_alerts']} alerts"
    )
    if not rep["labelled"]:
        out.print("stored readings carry no labels: only the alerts raised are reported")
    for title, header, rows in text_tables(rep):
        table = Table(title=title, title_justify="left")
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*row)
        out.print(table)
    if rep["alerts"]:
        table = Table(title="alerts raised", title_justify="left")
        for name in ("kind", "rule", "subject", "severity", "start", "end", "verdict"):
            table.add_column(name)
        for a in rep["alerts"]:
            verdict = ""
            if rep["labelled"]:
                verdict = "false" if not a["matches"] else ", ".join(a["matches"])
                verdict += " (flap)" if a["flap"] else ""
            table.add_row(
                a["kind"],
                a["rule"],
                a["subject"],
                a["severity"],
                when(a["start"]),
                when(a["end"]),
                verdict,
            )
        out.print(table)
