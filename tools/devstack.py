"""Run Mosquitto, InfluxDB and the platform services as child processes.

Used by ``deltasense up`` (development, demo) and by the integration-test
fixtures.  Every service's config, data and log live under one directory
(``var/`` by default), never in the system locations.  Children get
``PR_SET_PDEATHSIG`` so they die with the supervisor even if it is killed hard,
and each has its own process group so Ctrl-C in a terminal reaches only the
supervisor, which then stops them in reverse start order.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import logging
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from deltasense.runtime import Backoff
from deltasense.settings import Settings

_LOG = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
# The broker-crash loss window, in changes (about one per queued message).  Each save
# rewrites the whole store, so the save rate is the broker's cost: at 100, a 2 000 msg/s
# stream backed up 47 s behind the saves and 9 of 10 alerts missed the 1 s target;
# at 1 000, none did (docs/BENCHMARKS.md, "The broker's autosave").
BROKER_AUTOSAVE_CHANGES = 1000
# The supervisor also has Mosquitto save its store this often (SIGUSR1): a session or
# subscription made since the last change-triggered save (ingest's, after every broker
# start) would otherwise die with a crash, and the restarted broker would drop what
# devices publish until ingest has reconnected and subscribed again.
BROKER_SAVE_EVERY_S = 5.0
# Messages queued per offline persistent session: the setting's default is the one fact.
BROKER_MAX_QUEUED: int = Settings.model_fields["broker_max_queued_messages"].default
BROKER_SYS_INTERVAL_S = 5  # how often Mosquitto publishes its $SYS counters
# QoS 1 messages the broker may have out to one client unacknowledged.  Ingest
# acknowledges a batch only once it is written, so this must hold its window (the
# setting's default is the one fact): at the 100 set here before, nine in ten of
# its writes came from its 0.5 s flush timer with a batch a tenth full.
BROKER_MAX_INFLIGHT: int = Settings.model_fields["ingest_max_unacked"].default


class ServiceError(RuntimeError):
    """A service could not be started or did not become healthy in time."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def outside_ephemeral_port(host: str = "127.0.0.1", low: int = 20_000) -> int:
    """A free port below the kernel's ephemeral range, for a listener that goes away
    and comes back while clients keep reconnecting to it (a cut uplink, a stopped
    broker): a client whose own ephemeral port happens to equal a closed listening
    port connects to itself (TCP simultaneous open) and holds the port, so the
    listener cannot bind again."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32_768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, max(low + 1, first))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise ServiceError(f"no free port in {low}..{first}")


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0, cafile: Path | None = None) -> bool:
    """``url`` answers 2xx; an ``https`` URL verified against ``cafile`` if given."""
    try:
        ctx = ssl.create_default_context(cafile=str(cafile)) if cafile is not None else None
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()


def open_log(path: Path) -> BinaryIO:
    """Append to a log file only its owner can read (0600, in a 0700 directory): a log
    should never hold a secret, and if one ever slips in, it is not world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # an older file from before keeps no wider mode
    return os.fdopen(fd, "ab")


def require_binary(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if not path:
        raise ServiceError(
            f"{name} is not installed: run `make bootstrap` (installs the Debian packages "
            "mosquitto and influxdb)"
        )
    return path


@dataclass(frozen=True)
class RestartPolicy:
    """How a supervised child that died is brought back: after ``base_s``, doubling
    with each failure in a row up to ``cap_s`` (so a crash loop cannot spin the
    machine), the run of failures forgotten once the child has stayed up ``reset_after_s``."""

    base_s: float = 0.5
    cap_s: float = 8.0
    reset_after_s: float = 60.0

    def delay_s(self, failures_in_a_row: int) -> float:
        # The platform's backoff without jitter: one supervisor has no herd to spread.
        backoff = Backoff(self.base_s, self.cap_s, jitter=False)
        return backoff.delay(max(0, failures_in_a_row - 1))


class ProcState(StrEnum):
    """Where a supervised child is in its life (the state file and `status` say it)."""

    STOPPED = "stopped"
    STARTING = "starting"
    UP = "up"
    BACKOFF = "restarting"  # died; waiting for its backoff before the next start


@dataclass(frozen=True)
class Periodic:
    """A signal the supervisor sends a child every ``every_s`` while it is up."""

    signum: signal.Signals
    every_s: float


@dataclass
class ManagedProcess:
    """One child process with a health check and a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    healthy: Callable[[], bool]
    env: dict[str, str] | None = None
    ports: Sequence[tuple[str, int]] = ()  # must be free before start
    start_timeout_s: float = 30.0
    stop_timeout_s: float = 10.0
    periodic: Periodic | None = None  # sent by :meth:`supervise`, first ``every_s`` after up
    signalled: int = field(default=0, init=False)  # periodic signals sent, in all
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    state: ProcState = field(default=ProcState.STOPPED, init=False)
    restarts: int = field(default=0, init=False)  # restarts after a crash, in all
    failures_in_a_row: int = field(default=0, init=False)
    last_exit: int | None = field(default=None, init=False)  # exit code of the last crash
    since: float = field(default=0.0, init=False)  # wall time of the last state change
    _due: float = field(default=0.0, init=False)  # monotonic: next start, or start deadline
    _signal_due: float = field(default=0.0, init=False)  # monotonic: next periodic signal

    def _set(self, state: ProcState) -> None:
        self.state = state
        self.since = time.time()
        if state is ProcState.UP and self.periodic is not None:
            self._signal_due = time.monotonic() + self.periodic.every_s

    def spawn(self) -> None:
        """Start the process without waiting for it to become healthy."""
        for host, port in self.ports:
            if tcp_open(host, port):
                raise ServiceError(
                    f"{self.name}: port {host}:{port} is already in use (another copy "
                    "running? a system service?); stop it or choose another port with "
                    "the DELTASENSE_*_PORT settings"
                )
        log = open_log(self.log_path)
        try:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        self._set(ProcState.STARTING)
        self._due = time.monotonic() + self.start_timeout_s

    def start(self) -> None:
        """Start the process and wait until it is healthy (or raise ServiceError)."""
        self.spawn()
        assert self.proc is not None
        while time.monotonic() < self._due:
            if self.proc.poll() is not None:
                self._set(ProcState.STOPPED)
                raise ServiceError(
                    f"{self.name} exited with code {self.proc.returncode} during start-up; "
                    f"last log lines:\n{self.tail()}"
                )
            if self.healthy():
                _LOG.info("%s is up (pid %d)", self.name, self.proc.pid)
                self._set(ProcState.UP)
                return
            time.sleep(0.1)
        self.stop()
        raise ServiceError(
            f"{self.name} not healthy after {self.start_timeout_s:.0f} s; "
            f"last log lines:\n{self.tail()}"
        )

    def supervise(self, policy: RestartPolicy) -> str | None:
        """One look at a started child: notice a crash, wait out the backoff, restart,
        confirm health.  Never blocks; returns a line for the log when something changed."""
        now = time.monotonic()
        proc = self.proc
        if self.state is ProcState.UP:
            if proc is not None and proc.poll() is None:
                if self.failures_in_a_row and time.time() - self.since > policy.reset_after_s:
                    self.failures_in_a_row = 0
                if self.periodic is not None and now >= self._signal_due:
                    proc.send_signal(self.periodic.signum)
                    self.signalled += 1
                    self._signal_due = now + self.periodic.every_s
                return None
            return self._crashed(policy, now, "exited")
        if self.state is ProcState.STARTING:
            if proc is None or proc.poll() is not None:
                return self._crashed(policy, now, "exited during start-up")
            if self.healthy():
                self._set(ProcState.UP)
                return f"{self.name} is up again (pid {proc.pid}, restart {self.restarts})"
            if now > self._due:
                self.stop()
                return self._crashed(policy, now, "was not healthy in time")
            return None
        if self.state is ProcState.BACKOFF and now >= self._due:
            self.restarts += 1
            try:
                self.spawn()
            except ServiceError as exc:
                return self._crashed(policy, now, f"could not start ({exc})")
            return f"restarting {self.name} (restart {self.restarts})"
        return None

    def kill(self, hold_s: float = 0.0) -> None:
        """SIGKILL the child, as a crash would (chaos tests); the supervisor restarts
        it, but not before ``hold_s`` (an outage of that length)."""
        if self.proc is None or self.proc.poll() is not None:
            raise ServiceError(f"{self.name} is not running")
        self.proc.kill()
        self.proc.wait(timeout=5)
        self._down_until(time.monotonic() + hold_s)

    def release(self) -> None:
        """End an outage begun by :meth:`kill` now: the next look starts the child."""
        if self.state is ProcState.BACKOFF:
            self._due = time.monotonic()

    def _crashed(self, policy: RestartPolicy, now: float, what: str) -> str:
        delay = policy.delay_s(self.failures_in_a_row + 1)
        code = self._down_until(now + delay)
        return f"{self.name} {what} (code {code}); restarting in {delay:.1f} s"

    def _down_until(self, due: float) -> int | None:
        """Record a death (crash or chaos kill) and wait for ``due`` before the next start."""
        self.last_exit = self.proc.returncode if self.proc is not None else None
        self.failures_in_a_row += 1
        self._set(ProcState.BACKOFF)
        self._due = due
        return self.last_exit

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc = self.proc
        self._set(ProcState.STOPPED)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            _LOG.warning("%s did not stop in %.0f s; killing it", self.name, self.stop_timeout_s)
            proc.kill()
            proc.wait(timeout=5)

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"


def dynsec_plugin() -> str:
    """Path of Mosquitto's dynamic security plugin (Debian's mosquitto package)."""
    found = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))
    path = DYNSEC_PLUGIN if os.path.exists(DYNSEC_PLUGIN) else (found[0] if found else "")
    if not path:
        raise ServiceError(
            "Mosquitto's dynamic security plugin (mosquitto_dynamic_security.so) is missing: "
            "run `make bootstrap` (installs the Debian package mosquitto)"
        )
    return path


@dataclass(frozen=True)
class BrokerTls:
    """A TLS listener's files: the CA, the server certificate and its key (PEM)."""

    cafile: Path
    certfile: Path
    keyfile: Path


def mosquitto_process(
    var_dir: Path,
    *,
    port: int,
    host: str = "127.0.0.1",
    dynsec_file: Path | None = None,
    anonymous: bool = False,
    max_queued: int = BROKER_MAX_QUEUED,
    sys_interval_s: int = BROKER_SYS_INTERVAL_S,
    max_inflight: int = BROKER_MAX_INFLIGHT,
    tls: BrokerTls | None = None,
    plain_port: int | None = None,
) -> ManagedProcess:
    """A Mosquitto broker with persistence under ``var_dir/mosquitto``.

    Locked down unless told otherwise: anonymous clients are refused, and the
    identities and ACLs are the dynamic security plugin's ``dynsec_file``
    (without one, nobody gets in).  ``anonymous=True`` is for tests of the
    message path only (tests/conftest.py says which): anyone may do anything.

    With ``tls`` the listener on ``port`` speaks TLS 1.2 or later only, and
    ``plain_port``, if given, is a second, plain listener.  The plugin and
    ``allow_anonymous`` are global (``per_listener_settings false``), so both
    listeners enforce the same identities and ACLs.
    """
    if anonymous and dynsec_file is not None:
        raise ValueError("an anonymous test broker has no dynamic security file")
    base = (var_dir / "mosquitto").resolve()
    (base / "data").mkdir(parents=True, exist_ok=True)
    conf = base / "mosquitto.conf"
    if anonymous:
        access = "allow_anonymous true\n"
    else:
        access = "allow_anonymous false\n"
        if dynsec_file is not None:
            access += f"plugin {dynsec_plugin()}\nplugin_opt_config_file {dynsec_file.resolve()}\n"
    listeners = f"listener {port} {host}\n"
    if tls is not None:
        listeners += (
            f"cafile {tls.cafile.resolve()}\n"
            f"certfile {tls.certfile.resolve()}\n"
            f"keyfile {tls.keyfile.resolve()}\n"
            "tls_version tlsv1.2\n"  # Mosquitto 2: the lowest version accepted
        )
        if plain_port is not None:
            listeners += f"listener {plain_port} {host}\n"
    elif plain_port is not None:
        raise ValueError("plain_port is the second listener of a TLS broker")
    conf.write_text(
        "# written by deltasense; edits are overwritten on start\n"
        "per_listener_settings false\n"
        f"{listeners}"
        f"{access}"
        "persistence true\n"
        f"persistence_location {base / 'data'}/\n"
        # Save the in-memory store after every BROKER_AUTOSAVE_CHANGES changes
        # (queued and delivered messages, retained, subscriptions), not every 30 s: a
        # crash then loses at most about that many queued readings (measured by
        # `deltasense chaos`, docs/RELIABILITY.md). Mosquitto 2.0 rewrites its whole
        # store on each save, so a small value stalls it under load.
        "autosave_on_changes true\n"
        f"autosave_interval {BROKER_AUTOSAVE_CHANGES}\n"
        # Beyond this a persistent session's queue drops; $SYS counts it and analytics
        # raises broker-queue-drop (docs/RELIABILITY.md, "Platform health").
        f"max_queued_messages {max_queued}\n"
        f"sys_interval {sys_interval_s}\n"
        # MQTT 3.1.1 has no client-side window (MQTT 5's Receive Maximum): the
        # broker's is the one ingest gets (ingest_max_unacked).
        f"max_inflight_messages {max_inflight}\n"
        "message_size_limit 1048576\n"
        "log_dest stdout\n"
        "log_type error\nlog_type warning\nlog_type notice\n"
        # Stay as the invoking user: as root, Mosquitto would switch to the
        # `mosquitto` user, which cannot write the project's var/.
        "user root\n"
    )
    return ManagedProcess(
        name="mosquitto",
        argv=[require_binary("mosquitto"), "-c", str(conf)],
        log_path=var_dir / "log" / "mosquitto.log",
        healthy=lambda: tcp_open(host, port),
        ports=[(host, port)] + ([(host, plain_port)] if plain_port is not None else []),
        # SIGUSR1: Mosquitto writes its store (mosquitto(8)); see BROKER_SAVE_EVERY_S.
        periodic=Periodic(signal.SIGUSR1, BROKER_SAVE_EVERY_S),
    )


def influxdb_process(
    var_dir: Path, *, http_port: int, rpc_port: int, host: str = "127.0.0.1", auth: bool = True
) -> ManagedProcess:
    """An InfluxDB 1.x server with meta, data and WAL under ``var_dir/influxdb``.

    Authentication is on unless told otherwise (``auth=False``, benchmarks of the
    bare server only): every query and write needs a user (tools/influxdb.py makes
    them); ``/ping`` stays open for health checks, and the pprof endpoints are off."""
    base = (var_dir / "influxdb").resolve()
    base.mkdir(parents=True, exist_ok=True)
    conf = base / "influxdb.conf"
    conf.write_text(
        "# written by deltasense; edits are overwritten on start\n"
        "reporting-disabled = true\n"
        f'bind-address = "{host}:{rpc_port}"\n'
        f'[meta]\n  dir = "{base / "meta"}"\n  logging-enabled = false\n'
        f'[data]\n  dir = "{base / "data"}"\n  wal-dir = "{base / "wal"}"\n'
        "  query-log-enabled = false\n"
        "[monitor]\n  store-enabled = false\n"
        f'[http]\n  bind-address = "{host}:{http_port}"\n  log-enabled = false\n'
        f"  auth-enabled = {'true' if auth else 'false'}\n"
        "  pprof-enabled = false\n"
        "  max-body-size = 25000000\n"
        "[continuous_queries]\n  log-enabled = false\n"
    )
    return ManagedProcess(
        name="influxdb",
        argv=[require_binary("influxd"), "-config", str(conf)],
        log_path=var_dir / "log" / "influxdb.log",
        healthy=lambda: http_ok(f"http://{host}:{http_port}/ping"),
        ports=[(host, http_port), (host, rpc_port)],
    )


def python_service(
    name: str,
    module: str,
    var_dir: Path,
    *,
    env: dict[str, str],
    healthy: Callable[[], bool],
    args: Sequence[str] = (),
    ports: Sequence[tuple[str, int]] = (),
) -> ManagedProcess:
    """A platform service run as ``python -m <module>`` with settings in ``env``."""
    return ManagedProcess(
        name=name,
        argv=[sys.executable, "-m", module, *args],
        log_path=var_dir / "log" / f"{name}.log",
        healthy=healthy,
        env={**os.environ, **env},
        ports=ports,
    )


class Stack:
    """Starts processes in order and stops them in reverse; a context manager.

    :meth:`supervise`, called every fraction of a second by the supervisor's loop,
    restarts a child that died (with :class:`RestartPolicy` backoff) while the rest
    stay up.  Stopping in reverse start order stops producers (the simulator)
    before the services that watch them, and the broker last.
    """

    def __init__(
        self, processes: Sequence[ManagedProcess], policy: RestartPolicy | None = None
    ) -> None:
        self.processes = list(processes)
        self.policy = policy or RestartPolicy()
        self._started: list[ManagedProcess] = []

    def start(self, on_started: Callable[[ManagedProcess], None] | None = None) -> None:
        try:
            for proc in self.processes:
                proc.start()
                self._started.append(proc)
                if on_started:
                    on_started(proc)
        except BaseException:
            self.stop()
            raise

    def supervise(self) -> list[str]:
        """Restart what died; the log lines of what changed."""
        return [line for p in self._started if (line := p.supervise(self.policy)) is not None]

    def stop(self) -> None:
        for proc in reversed(self._started):
            with contextlib.suppress(Exception):
                proc.stop()
        self._started.clear()

    def dead(self) -> list[ManagedProcess]:
        return [p for p in self._started if not p.alive()]

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
