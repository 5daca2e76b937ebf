"""``deltasense``: the command line for developers, demos and operations."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from api.auth import Role
from deltasense.audit import Action, Result
from deltasense.settings import ConfigFileError, Settings, load_settings
from tools.devstack import ServiceError

app = typer.Typer(
    help="DeltaSense urban sensing platform: run the stack, simulate a city, manage tokens, accounts and devices.",
    no_args_is_help=True,
    add_completion=False,
)
token_app = typer.Typer(help="API bearer tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
from tools.firmware_flash import firmware_app  # noqa: E402 - kept next to its registration

app.add_typer(firmware_app, name="firmware")
from tools.devices import audit_or_fail, devices_app  # noqa: E402

app.add_typer(devices_app, name="devices")
from tools.users import users_app  # noqa: E402

app.add_typer(users_app, name="users")
console = Console(stderr=True)
out = Console()


def _fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigFileError as exc:
        _fail(f"configuration file: {exc}")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        _fail(f"invalid settings ({problems})")


class _Stop(Exception):
    """Raised by the SIGTERM handler to unwind the supervisor loop."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _print_urls(settings: Settings) -> None:
    from deltasense.access import admin_token_file

    token_file = admin_token_file(settings.var_dir)
    out.print(f"[bold green]DeltaSense is up[/] (site {settings.site})")
    out.print(f"  console   {settings.api_base_url}/")
    out.print(f"  API docs  {settings.api_base_url}/docs")
    mqtt_scheme = "mqtts" if settings.mqtt_tls else "mqtt"  # mqtts: TLS, var/tls/ca.pem
    out.print(f"  MQTT      {mqtt_scheme}://{settings.mqtt_host}:{settings.mqtt_port}")
    out.print(f"  InfluxDB  {settings.influx_base_url} (database {settings.influx_db})")
    if settings.admin_token:
        out.print("  admin token: from DELTASENSE_ADMIN_TOKEN")
    elif token_file.exists() and sys.stdout.isatty():
        # Only to a person at a terminal (not rich's is_terminal: FORCE_COLOR fakes one),
        # never into a log: `up --detach` writes this to var/log/supervisor.log, and a
        # pipe may be a log too.
        out.print(f"  admin token: {token_file.read_text().strip()}  ({token_file})")
    elif token_file.exists():
        out.print(f"  admin token: in {token_file} (readable by you only)", soft_wrap=True)
    from api.accounts import users_file

    if not users_file(settings.var_dir).exists():  # the console signs in with accounts
        out.print("  console accounts: none yet; make one with")
        out.print("    deltasense users add NAME --role admin", highlight=False)
    logs = settings.var_dir.resolve() / "log"
    out.print(f"  logs      {logs}/")


@app.command()
def up(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background; stop with `down`.")
    ] = False,
    simulate: Annotated[
        int, typer.Option(min=0, max=10_000, help="Also run a simulated city of N devices.")
    ] = 0,
    rate: Annotated[
        float, typer.Option(min=0.001, max=10.0, help="Simulated readings/s per device.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Simulator seed.")] = 1,
) -> None:
    """Start Mosquitto, InfluxDB, ingest, analytics and the API (Ctrl-C stops all)."""
    from tools.stack import build_stack, pid_alive, read_state, write_state

    settings = _settings()
    state = read_state(settings)
    if state is not None and state.state in {"starting", "up"} and pid_alive(state.pid):
        _fail(f"a stack is already running (supervisor pid {state.pid}); `deltasense down` first")
    if detach:
        _start_detached(settings, simulate, rate, seed)
        return
    stack = build_stack(settings, simulate_devices=simulate, simulate_rate=rate, seed=seed)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    write_state(settings, "starting")
    failed = False
    try:
        with console.status("starting services…"):
            stack.start(on_started=lambda p: console.print(f"  [green]✓[/] {p.name}"))
        write_state(settings, "up", stack, api=settings.api_base_url)
        _print_urls(settings)
        out.print("Press Ctrl-C to stop.")
        # Supervise: a child that dies is restarted with backoff while the rest stay
        # up; the state file says who is degraded (`deltasense status`, the console).
        while True:
            changes = stack.supervise()
            for line in changes:
                console.print(f"[yellow]{line}[/]" if "restarting in" in line else line)
            if changes:
                write_state(settings, "up", stack, api=settings.api_base_url)
            time.sleep(0.2)
    except ServiceError as exc:
        failed = True
        write_state(settings, "failed", reason=str(exc))
        _fail(str(exc), code=1)
    except (KeyboardInterrupt, _Stop):
        console.print("stopping…")
        write_state(settings, "stopping", stack, api=settings.api_base_url)
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
        if not failed:
            write_state(settings, "stopped", stack)
        console.print("all services stopped")


def _start_detached(settings: Settings, simulate: int, rate: float, seed: int) -> None:
    from tools.devstack import open_log
    from tools.stack import pid_alive, read_state, run_dir

    log_path = settings.var_dir.resolve() / "log" / "supervisor.log"
    # No live stack (checked by the caller): forget any stale state file, so the
    # background supervisor starts clean and we wait for its own "up".
    (run_dir(settings) / "stack.json").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "tools.cli", "up", "--simulate", str(simulate)]
    argv += ["--rate", str(rate), "--seed", str(seed)]
    with open_log(log_path) as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (run_dir(settings) / "supervisor.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + 120
    with console.status("starting services in the background…"):
        while time.monotonic() < deadline:
            state = read_state(settings)
            if state is not None and state.state == "up" and state.pid == proc.pid:
                _print_urls(settings)
                out.print("Stop with `deltasense down` (or `make down`).")
                return
            if proc.poll() is not None or (state is not None and state.state == "failed"):
                _fail(f"the stack failed to start; see {log_path}", code=1)
            time.sleep(0.2)
    if pid_alive(proc.pid):
        proc.terminate()
    _fail(f"the stack did not come up in 120 s; see {log_path}", code=1)


@app.command()
def down() -> None:
    """Stop a stack started with `up --detach`."""
    from tools.stack import stop_background

    settings = _settings()
    try:
        stopped = stop_background(settings)
    except ServiceError as exc:
        _fail(str(exc), code=1)
    out.print("stack stopped" if stopped else "no stack was running")


@app.command()
def status() -> None:
    """Show the supervised services (state, restarts) and which endpoints answer."""
    from rich.table import Table

    from tools.devstack import http_ok, tcp_open
    from tools.stack import analytics_name, api_ca, ingest_name, pid_alive, read_state

    settings = _settings()
    healthy = True
    state = read_state(settings)
    if state is not None and state.state in {"starting", "up"} and pid_alive(state.pid):
        table = Table("service", "state", "pid", "restarts", "last exit", box=None)
        for svc in state.services:
            colour = "green" if svc.state == "up" else "yellow"
            table.add_row(
                svc.name,
                f"[{colour}]{svc.state}[/]",
                str(svc.pid or "-"),
                str(svc.restarts),
                "-" if svc.last_exit is None else str(svc.last_exit),
            )
        out.print(f"supervisor pid {state.pid}: {state.state}")
        out.print(table)
        healthy = not state.degraded()
    else:
        out.print("no supervisor running here; asking the endpoints")
    checks = {
        "mosquitto": tcp_open(settings.mqtt_host, settings.mqtt_port),
        "influxdb": http_ok(f"{settings.influx_base_url}/ping"),
        "api": http_ok(f"{settings.api_base_url}/healthz", cafile=api_ca(settings)),
    }
    ingest = [
        settings.model_copy(update={"ingest_worker": i}) for i in range(settings.ingest_workers)
    ]
    for name, port in (
        *((ingest_name(w.ingest_worker), w.ingest_worker_metrics_port) for w in ingest),
        *(
            (
                analytics_name(i),
                settings.analytics_metrics_port + i if settings.analytics_metrics_port else 0,
            )
            for i in range(settings.analytics_partitions)
        ),
    ):
        if port:  # without a metrics port there is nothing to ask
            checks[name] = http_ok(f"http://{settings.metrics_host}:{port}/metrics")
    for name, ok in checks.items():
        out.print(f"  {'[green]answers[/]' if ok else '[red]no answer[/]':>20}  {name}")
    if not (healthy and all(checks.values())):
        raise typer.Exit(1)


@app.command()
def chaos(
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only this scenario (repeatable): ingest, analytics, api, mosquitto, "
            "influxdb, mosquitto-backlog, queue-overflow. Default: all, in that order."
        ),
    ] = None,
    outage_s: Annotated[
        float, typer.Option(min=0, max=600, help="How long InfluxDB stays down.")
    ] = 60.0,
    rate: Annotated[float, typer.Option(min=1, max=5000, help="Readings/s offered.")] = 200.0,
    devices: Annotated[int, typer.Option(min=1, max=1000, help="Publishing devices.")] = 20,
    lead_s: Annotated[float, typer.Option(min=0.5, max=600, help="Load before the kill.")] = 5.0,
    tail_s: Annotated[float, typer.Option(min=0, max=600, help="Load after recovery.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcomes as JSON.")] = False,
) -> None:
    """Kill each platform process in turn under a steady publisher and count the loss.

    Runs a stack of its own on free ports; exits 1 when a reading the broker
    acknowledged is missing from InfluxDB, is stored twice, or an alert is raised twice.
    """
    import dataclasses
    import json

    from rich.table import Table

    from tools import chaos as chaos_mod

    known = chaos_mod.SCENARIOS
    wanted = scenario or list(known)
    unknown = [w for w in wanted if w not in known]
    if unknown:
        _fail(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(known)}")
    chosen = [
        dataclasses.replace(known[w], name=f"influxdb down {outage_s:g} s", outage_s=outage_s)
        if w == "influxdb"
        else known[w]
        for w in wanted
    ]
    table = Table(
        "scenario", "published", "unconfirmed", "stored", "duplicates", "lost",
        "restart s", "recover s", "alert ids", "dropped", "drop→alert s", "verdict", box=None,
    )  # fmt: skip

    def show(o: chaos_mod.Outcome) -> None:
        if not as_json:
            console.print(f"{o.scenario}: lost {o.lost}, recovered in {o.recover_s:.1f} s")

    try:
        outcomes = chaos_mod.run(
            chosen, devices=devices, rate=rate, lead_s=lead_s, tail_s=tail_s, on_outcome=show
        )
    except (ServiceError, TimeoutError) as exc:
        _fail(f"chaos run aborted: {exc}", code=1)
    if as_json:
        out.print_json(json.dumps([dataclasses.asdict(o) | {"ok": o.ok} for o in outcomes]))
    else:
        for o in outcomes:
            table.add_row(
                o.scenario, str(o.published), str(o.unconfirmed), str(o.stored),
                str(o.duplicates), str(o.lost), f"{o.restart_s:.1f}", f"{o.recover_s:.1f}",
                str(o.alert_ids), str(o.dropped),
                "" if o.alert_after_drop_s is None else f"{o.alert_after_drop_s:.1f}",
                "[green]ok[/]" if o.ok else "[red]FAIL[/]",
            )  # fmt: skip
        Console(width=max(out.width, 130)).print(table)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


@app.command("simulate")
def simulate_cmd(
    devices: Annotated[int, typer.Option(min=1, max=10_000, help="Number of devices.")] = 20,
    rate: Annotated[
        float, typer.Option(min=0.001, max=10.0, help="Readings per second per device.")
    ] = 0.2,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds to run; default: until Ctrl-C.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for placement and values.")] = 1,
    edge: Annotated[
        str | None,
        typer.Option(
            help="Put this ward behind an edge gateway: its own Mosquitto and `deltasense "
            "edge` start here, and the ward's devices publish to them (docs/EDGE.md)."
        ),
    ] = None,
    edge_port: Annotated[
        int, typer.Option(min=1, max=65535, help="The ward broker's port (with --edge).")
    ] = 1884,
    edge_metrics_port: Annotated[
        int, typer.Option(min=1, max=65535, help="The gateway's metrics port (with --edge).")
    ] = 9103,
) -> None:
    """Publish contract-conformant telemetry from a simulated Bạc Liêu city."""
    import asyncio

    from deltasense.access import Service, read_secret
    from simulators.run import simulate

    settings = _settings()
    if edge is not None:
        _simulate_behind_edge(
            settings, edge, edge_port, edge_metrics_port, devices, rate, duration, seed
        )
        return
    if settings.mqtt_username is None:
        # Against the local stack: the simulator's own account (docs/SECURITY.md).
        secret = read_secret(settings.var_dir, Service.SIMULATOR.username)
        if secret is not None:
            settings = settings.model_copy(
                update={"mqtt_username": Service.SIMULATOR.username, "mqtt_password": secret}
            )
    out.print(
        f"simulating {devices} devices at {rate:g} readings/s each on "
        f"mqtt://{settings.mqtt_host}:{settings.mqtt_port} (site {settings.site})"
    )
    try:
        stats = asyncio.run(
            simulate(settings, devices=devices, rate=rate, duration=duration, seed=seed)
        )
    except KeyboardInterrupt:
        out.print("stopped")
        return
    out.print(f"done: {stats}")


def _simulate_behind_edge(
    settings: Settings,
    ward: str,
    port: int,
    metrics_port: int,
    devices: int,
    rate: float,
    duration: float | None,
    seed: int,
) -> None:
    """The ward's devices → its own broker → ``python -m edge`` → the platform; the
    other wards' devices publish to the platform directly, as usual."""
    import asyncio

    from deltasense import dynsec, provisioning
    from deltasense.access import Service, read_secret
    from deltasense.wards import WARDS_BY_ID
    from edge.settings import EdgeSettings
    from simulators.run import simulate
    from tools.devstack import Stack
    from tools.edgestack import ensure_gateway_account, gateway_process, ward_broker

    if ward not in WARDS_BY_ID:
        _fail(f"--edge {ward!r}: not a ward of the site; known: {', '.join(sorted(WARDS_BY_ID))}")
    try:
        password = asyncio.run(ensure_gateway_account(settings, ward))
    except (provisioning.ProvisioningError, dynsec.DynsecError) as exc:
        _fail(f"the gateway's account gw.{ward}: {exc} (is the stack running? `deltasense up`)")
    var = settings.var_dir.resolve() / "edge" / ward
    edge_settings = EdgeSettings(
        site=settings.site,
        district=ward,
        var_dir=var,
        spool_path=var / "spool.sqlite3",
        local_port=port,
        uplink_host=settings.mqtt_host,
        uplink_port=settings.mqtt_port,
        uplink_password=password,
        # The platform's broker speaks TLS (mqtt_tls): the gateway pins the same CA.
        uplink_tls_ca_file=settings.mqtt_ca_path if settings.mqtt_tls else None,
        metrics_port=metrics_port,
    )
    secret = read_secret(settings.var_dir, Service.SIMULATOR.username)
    if settings.mqtt_username is None and secret is not None:
        settings = settings.model_copy(
            update={"mqtt_username": Service.SIMULATOR.username, "mqtt_password": secret}
        )
    stack = Stack([ward_broker(var, port=port), gateway_process(edge_settings)])
    try:
        stack.start(on_started=lambda p: console.print(f"  [green]✓[/] {p.name}"))
    except ServiceError as exc:
        _fail(str(exc), code=1)
    out.print(
        f"ward {ward} behind its gateway: ward broker mqtt://127.0.0.1:{port}, gateway "
        f"metrics http://127.0.0.1:{metrics_port}/metrics, spool {edge_settings.spool_file}"
    )
    try:
        stats = asyncio.run(
            simulate(
                settings,
                devices=devices,
                rate=rate,
                duration=duration,
                seed=seed,
                edge={ward: ("127.0.0.1", port)},
            )
        )
        out.print(f"done: {stats}")
    except KeyboardInterrupt:
        out.print("stopped")
    finally:
        stack.stop()


@token_app.command("add")
def token_add(
    name: Annotated[str, typer.Option(help="Who or what the token is for.")],
    role: Annotated[
        Role, typer.Option(help="viewer < operator < admin; metrics: scrape /metrics only.")
    ] = Role.VIEWER,
) -> None:
    """Create an API token; it is printed once and stored only as a hash."""
    from api.auth import add_token

    settings = _settings()
    try:
        token = add_token(settings.var_dir, name, role)
    except ValueError as exc:
        audit_or_fail(settings, Action.TOKEN_ADD, name[:64], Result.INVALID, {"error": str(exc)})
        _fail(str(exc))
    audit_or_fail(settings, Action.TOKEN_ADD, name, Result.OK, {"role": str(role)})
    out.print(token)


@token_app.command("remove")
def token_remove(
    name: Annotated[str, typer.Option(help="Revoke every token with this name.")],
) -> None:
    """Revoke API tokens by name (the API notices without a restart)."""
    from api.auth import remove_tokens

    settings = _settings()
    removed = remove_tokens(settings.var_dir, name)
    if not removed:
        audit_or_fail(settings, Action.TOKEN_REMOVE, name[:64], Result.NOT_FOUND, {})
        _fail(f"no token named {name!r}", code=1)
    audit_or_fail(settings, Action.TOKEN_REMOVE, name, Result.OK, {"removed": removed})
    out.print(f"revoked {removed} token(s) named {name!r}")


@app.command()
def openapi(
    path: Annotated[Path, typer.Option("--out", help="Where to write it.")] = Path(
        "docs/openapi.json"
    ),
) -> None:
    """Write the API's OpenAPI document (generated from the code)."""
    from api.openapi import export

    export(path)
    out.print(f"wrote {path}")


@app.command("backtest")
def backtest_cmd(
    scenario: Annotated[
        str | None, typer.Option(help="Scenario to run through the analytics engine.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Scenario seed.")] = 1,
    start: Annotated[
        str | None, typer.Option(help="Replay stored readings from (ISO 8601, epoch, -6h).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="…until this time.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[Path | None, typer.Option(help="Write an HTML timeline here.")] = None,
    tolerance: Annotated[float, typer.Option(help="Matching tolerance, minutes.")] = 15.0,
    list_: Annotated[bool, typer.Option("--list", help="Name the scenarios.")] = False,
) -> None:
    """Score the analytics rules on a labelled scenario, or replay stored readings."""
    from backtest.runner import BacktestError, run_cli, scenario_list
    from tools.influxdb import as_user

    if list_:
        for name, summary, hours in scenario_list():
            out.print(f"{name:16} {hours:5.2f} h  {summary}")
        return
    try:
        run_cli(
            scenario=scenario,
            seed=seed,
            start=start,
            end=end,
            json_out=json_out,
            html_path=html,
            tolerance_min=tolerance,
            settings=as_user(_settings()),
            out=out,
            err=console,
        )
    except BacktestError as exc:
        _fail(str(exc))


@app.command("backtest-matrix")
def backtest_matrix_cmd(
    seeds: Annotated[str, typer.Option(help="Seeds: 1-5, 1,3,7 or 2.")] = "1-5",
    scenario: Annotated[
        list[str] | None, typer.Option(help="Only this scenario (repeatable); default: all.")
    ] = None,
    jobs: Annotated[int, typer.Option(help="Worker processes (default: CPUs, at most 4).")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the table as Markdown (docs).")
    ] = False,
) -> None:
    """Backtest every scenario for several seeds and check the analytics acceptance.

    Exits 1 when a criterion is not met."""
    from dataclasses import asdict

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from backtest import matrix as bm
    from backtest import scenarios
    from backtest.runner import BacktestError

    settings = _settings()
    try:
        seed_list = bm.parse_seeds(seeds)
        names = scenario or scenarios.names()
        for name in names:
            if name not in scenarios.names():
                raise BacktestError(str(scenarios.UnknownScenarioError(name)))
        if jobs < 0:
            raise BacktestError("--jobs must be >= 0 (0: one per CPU, at most 4)")
    except BacktestError as exc:
        _fail(str(exc))
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task("scenario runs", total=len(names) * len(seed_list))
        runs = bm.run_matrix(
            names,
            seed_list,
            thresholds_file=settings.thresholds_file,
            site=settings.site,
            jobs=jobs or bm.default_jobs(),
            on_done=lambda _run: progress.advance(task),
        )
    verdicts = bm.acceptance(runs)
    if json_out:
        out.print_json(
            data={"runs": [asdict(r) for r in runs], "acceptance": [asdict(v) for v in verdicts]}
        )
    elif markdown:
        out.print(bm.markdown(runs), markup=False, highlight=False, soft_wrap=True)
    else:
        header, rows = bm.table_rows(runs)
        table = Table(title="backtests per alert kind", title_justify="left")
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i < 3 else "right")
        for row in rows:
            table.add_row(*row)
        out.print(table)
        for v in verdicts:
            mark = "[green]met[/]" if v.met else "[red]NOT met[/]"
            out.print(f"{mark}  {v.criterion}: {v.detail}")
    if not all(v.met for v in verdicts):
        raise typer.Exit(1)


@app.command("ingest")
def ingest_cmd() -> None:
    """Run the ingest service in the foreground."""
    from ingest.__main__ import main

    main()


@app.command("analytics")
def analytics_cmd() -> None:
    """Run the analytics service in the foreground."""
    from analytics.__main__ import main

    main()


@app.command("notifier")
def notifier_cmd() -> None:
    """Run the notifier service (Telegram, Zalo, email, webhooks) in the foreground."""
    from notifier.__main__ import main

    main()


@app.command("edge")
def edge_cmd(
    show_status: Annotated[
        bool,
        typer.Option("--status", help="Print the spool's state (records, oldest, drops) and exit."),
    ] = False,
) -> None:
    """Run the district edge gateway (DELTASENSE_EDGE_* settings; edge/README.md)."""
    from edge.__main__ import main, spool_status

    if show_status:
        code, text = spool_status()
        (out if code == 0 else console).print(text, highlight=False)
        raise typer.Exit(code)
    raise typer.Exit(main())


@app.command("api")
def api_cmd() -> None:
    """Run the API service in the foreground."""
    from api.__main__ import main

    main()


if __name__ == "__main__":
    app()
