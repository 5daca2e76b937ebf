"""One analytics evaluation tick at 100 000 sensors, side by side with two peers.

The fleet has the simulator's shares (55 % lamps, 20 % water, 15 % meters, 10 %
weather stations) with full windows of quiet, plausible data (6 h of 1-minute
slots for weather and water, 2 h for lamps and meters, 48 hourly counter slots).

* **engine tick**: ``Engine.evaluate`` — every rule of every family, the
  lifecycles and the district roll-ups.  Steady state (the first tick, which
  learns rated lamp powers, is a warm-up), best of ``ROUNDS``.
* **core rules, NumPy**: the rule kernels both peers implement, on the same
  window arrays: weather (10-min mean → cấp, gust, squall, detrended 3 h/6 h
  pressure tendency, rain 1 h/3 h from counters, stuck over 60 min, spikes),
  water (plausible latest level, street flood, Hampel-cleaned depth, rise
  fitted over 15 min) and lamps (day-burning, lamp out, drift median over
  30 min, cycling over 1 h).
* **per-sensor Python loop**: those kernels, sensor by sensor over Python lists
  (timed on a sample and scaled to the fleet: the loop is linear in sensors).
* **pandas rolling windows**: those kernels as ``DataFrame.rolling`` over the
  (slots × sensors) frames — the way one writes them in pandas — taking the
  newest row.

Memory is the engine's own arrays (``Engine.memory_bytes``) and the growth of
the process's peak RSS while building and evaluating it.
"""

from __future__ import annotations

import gc
import itertools
import math
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from analytics import window as win
from analytics.engine import Engine
from analytics.rules import energy
from analytics.thresholds import load_thresholds
from deltasense.contract import Kind
from deltasense.rulekernels import flood, storm
from deltasense.rulekernels.base import last_valid, linear_fit
from deltasense.rulekernels.limits import FloodLimits, LightingLimits, StormLimits
from deltasense.runtime import DEFAULT_UTC_OFFSET_MIN
from deltasense.thresholds import Thresholds

N_SENSORS = 100_000
SHARES = {Kind.LAMP: 0.55, Kind.WATER: 0.20, Kind.METER: 0.15, Kind.WEATHER: 0.10}
DISTRICTS = 10
ROUNDS = 5
LOOP_SAMPLE = 2_000  # sensors the Python loop runs on (then scaled)
UTC_OFFSET_MIN = DEFAULT_UTC_OFFSET_MIN  # Bạc Liêu, UTC+7: NOW below is 20:00 local
SLOT = win.DEFAULT_SLOT_MS
NOW = 1_780_000_000_000 - 1_780_000_000_000 % SLOT + 13 * 3_600_000  # 20:00 local: lamps on


# --- the fleet ------------------------------------------------------------------------
def _fill(w: win.Window, metric: str, rows: np.ndarray, values: np.ndarray, end_ms: int) -> None:
    """``values`` (sensors × slots) into ``w``: one vectorised ingest per slot."""
    k = values.shape[1]
    for j in range(k):
        ts = np.full(rows.size, end_ms - (k - 1 - j) * w.slot_ms + 1_000, dtype=np.int64)
        w.ingest(metric, rows, ts, values[:, j])


def build_engine(n: int = N_SENSORS, seed: int = 7, thresholds: Thresholds | None = None) -> Engine:
    rng = np.random.default_rng(seed)
    eng = Engine(thresholds or load_thresholds(), utc_offset_min=UTC_OFFSET_MIN)
    counts = {kind: int(share * n) for kind, share in SHARES.items()}
    counts[Kind.LAMP] += n - sum(counts.values())
    rows: dict[Kind, np.ndarray] = {}
    for kind, count in counts.items():
        devices = [f"{kind.value[:2]}-{i:06d}" for i in range(count)]
        districts = [f"d-{i % DISTRICTS}" for i in range(count)]
        rows[kind] = eng.add_devices(kind, devices, districts)
    end = NOW - SLOT

    def noise(shape: tuple[int, int], sd: float) -> np.ndarray:
        return rng.normal(0.0, sd, shape).astype(np.float32)

    w = eng.window_of(Kind.WEATHER)
    r, k = rows[Kind.WEATHER], w.n_slots
    shape = (r.size, k)
    t = np.linspace(0, 1, k, dtype=np.float32)[None, :]
    _fill(w, "t_c", r, 28 + 2 * t + noise(shape, 0.2), end)
    _fill(w, "rh_pct", r, 80 + noise(shape, 1.5), end)
    _fill(w, "p_hpa", r, 1008 + noise(shape, 0.15), end)
    _fill(w, "wind_ms", r, np.abs(3 + noise(shape, 1.0)), end)
    _fill(w, "gust_ms", r, np.abs(5 + noise(shape, 1.5)), end)
    _fill(w, "wind_dir_deg", r, (120 + noise(shape, 20)) % 360, end)
    _fill(
        w, "rain_total", r, np.cumsum(rng.random(shape, dtype=np.float32) < 0.02, axis=1) * 0.2, end
    )
    hw = eng.window_of(Kind.WEATHER, hourly=True)
    _fill(
        hw,
        "rain_total",
        r,
        np.cumsum(rng.random((r.size, 48)) < 0.1, axis=1).astype(np.float32),
        end,
    )

    w = eng.window_of(Kind.WATER)
    r = rows[Kind.WATER]
    _fill(w, "level_cm", r, noise((r.size, w.n_slots), 0.3), end)

    w = eng.window_of(Kind.LAMP)
    r, k = rows[Kind.LAMP], w.n_slots
    shape = (r.size, k)
    rated = rng.choice(np.asarray([60, 90, 120, 150, 200, 250], dtype=np.float32), r.size)[:, None]
    power = rated * (1 + noise(shape, 0.01))
    _fill(w, "on", r, np.ones(shape, dtype=np.float32), end)
    _fill(w, "dim_pct", r, np.full(shape, 100, dtype=np.float32), end)
    _fill(w, "power_w", r, power, end)
    _fill(w, "lux", r, np.abs(noise(shape, 2)), end)
    _fill(w, "norm_w", r, power, end)
    hw = eng.window_of(Kind.LAMP, hourly=True)
    _fill(hw, "norm_w", r, np.repeat(rated, 48, axis=1), end)

    w = eng.window_of(Kind.METER)
    r, k = rows[Kind.METER], w.n_slots
    _fill(w, "energy_total", r, 1e6 + np.cumsum(50 + noise((r.size, k), 1), axis=1), end)
    hw = eng.window_of(Kind.METER, hourly=True)
    _fill(hw, "energy_total", r, np.cumsum(3000 + noise((r.size, 48), 30), axis=1), end)

    reg = eng.registry
    reg.last_seen[: reg.n] = end
    return eng


# --- the core kernels, vectorised -------------------------------------------------------
def arrays(eng: Engine) -> dict[str, Any]:
    """The window arrays the core kernels read (cut once, outside the timings)."""
    wx = eng.window_of(Kind.WEATHER)
    wa = eng.window_of(Kind.WATER)
    lp = eng.window_of(Kind.LAMP)
    return {
        "wind": wx.series("wind_ms"),
        "gust": wx.series("gust_ms"),
        "p": wx.series("p_hpa"),
        "p_times": wx.slot_times(),
        "rain": wx.series("rain_total"),
        "stuck": {m: wx.series(m) for m in ("t_c", "rh_pct", "p_hpa", "wind_ms", "wind_dir_deg")},
        "level": wa.series("level_cm"),
        "on": lp.series("on"),
        "power": lp.series("power_w"),
        "lux": lp.series("lux"),
        "norm": lp.series("norm_w"),
        "rated": np.full(lp.n_sensors, 150.0, dtype=np.float32),
        "elev": np.full(lp.n_sensors, -20.0, dtype=np.float32),
    }


def core_numpy(a: dict[str, Any], t: Thresholds) -> int:
    """The core kernels on whole arrays; returns how many conditions hold."""
    s, fl, li = t.storm, t.flood, t.lighting
    fired = 0
    wind = a["wind"]
    mean10 = storm.ten_minute_mean(wind[:, -10:], 10, 1.0)
    fired += int(storm.wind_rule(mean10, s, 1.0).condition.sum())
    gust_limits = StormLimits(s.gust_warning_ms, s.gust_critical_ms)
    gust = storm.recent_max(a["gust"][:, -2:])
    fired += int(storm.gust_rule(gust, gust_limits, 1.0).condition.sum())
    fired += int(storm.squall_rule(wind[:, -12:], s, 60.0, 1.0).condition.sum())
    p = storm.detrend_pressure(a["p"], a["p_times"], s, UTC_OFFSET_MIN)
    f3, f6 = storm.pressure_tendency(p, 3, 1.0), storm.pressure_tendency(p, 6, 1.0)
    fired += int(storm.pressure_rule(f3, f6, s, 0.5).condition.sum())
    from analytics.rules import health, rain

    r1 = rain.total_over(a["rain"], 60)
    r3 = rain.total_over(a["rain"], 180)
    fired += int(((r1 >= 25) | (r3 >= 76)).sum())
    stuck = {m: x[:, -60:] for m, x in a["stuck"].items()}
    fired += int(health.stuck_rule(stuck, t.health).condition.sum())
    spikes = {m: stuck[m][:, -30:] for m in ("t_c", "rh_pct", "p_hpa", "wind_ms")}
    fired += int(health.spike_rule(spikes, t.health).condition.sum())

    level = a["level"][:, -19:]
    latest, col = last_valid(level)
    before = np.where(np.arange(19)[None, :] < col[:, None], level, np.float32(np.nan))
    prev, pcol = last_valid(before.astype(np.float32))
    plausible = flood.plausible_latest(latest, prev, (col - pcol).astype(np.float32), fl)
    excluded = np.zeros(latest.size, dtype=np.bool_)
    street_limits = FloodLimits(fl.street_warning_mm, fl.street_critical_mm)
    street = flood.street_flood(
        plausible, excluded=excluded, flood=fl, limits=street_limits, deadband_mm=20.0
    )
    fired += int(street.condition.sum())
    slope, fitted = linear_fit(flood.clean_depth(level[:, -15:], fl))
    fired += int(
        flood.rise_rule(
            street.values["depth_mm"],
            slope,
            fitted,
            excluded=excluded,
            flood=fl,
            limits=street_limits,
        ).condition.sum()
    )

    on, _ = last_valid(a["on"][:, -10:])
    power, _ = last_valid(a["power"][:, -10:])
    lux, _ = last_valid(a["lux"][:, -10:])
    fired += int(energy.day_burn_rule(power, a["rated"], on, lux, a["elev"], li).condition.sum())
    fired += int(energy.lamp_out_rule(power, a["rated"], lux, a["elev"], li).condition.sum())
    drift_limits = LightingLimits(li.power_drift_pct)
    fired += int(
        energy.drift_rule(a["norm"][:, -30:], a["rated"], li, drift_limits).condition.sum()
    )
    fired += int(energy.cycling_rule(energy.switch_count(a["on"][:, -61:]), li).condition.sum())
    return fired


# --- the same kernels, one sensor at a time in Python ---------------------------------------
def _valid(xs: list[float]) -> list[float]:
    return [x for x in xs if x == x]


def _mean(xs: list[float]) -> float:
    v = _valid(xs)
    return sum(v) / len(v) if v else math.nan


def core_loop(a: dict[str, Any], t: Thresholds, sample: int) -> int:
    s, fl, li = t.storm, t.flood, t.lighting
    fired = 0
    caps = sorted(s.wind_cap_ms.items())
    hours = ((a["p_times"] / 3_600_000 + 7) % 24).tolist()
    wave = [s.semidiurnal_amplitude_hpa * math.cos(2 * math.pi * (h - 10) / 12) for h in hours]
    n_wx = min(sample, a["wind"].shape[0])
    for i in range(n_wx):
        wind = a["wind"][i].tolist()
        mean10 = _mean(wind[-10:])
        cap = max((lv for lv, b in caps if mean10 >= b), default=0)
        fired += cap >= 6
        gust = max(_valid(a["gust"][i, -2:].tolist()), default=math.nan)
        fired += gust >= s.gust_warning_ms
        hold = _valid(wind[-1:])
        base = _valid(wind[-11:-1])
        if hold and base:
            fired += min(hold) >= s.squall.peak_ms and min(hold) - min(base) >= s.squall.rise_ms
        p = [x - w for x, w in zip(a["p"][i].tolist(), wave, strict=True)]
        k = len(p)
        now = _mean(p[k - 5 :])
        f3 = now - _mean(p[k - 5 - 180 : k - 180])
        f6 = now - _mean(p[0:5])
        fired += f3 <= -s.pressure_fall_3h_hpa or f6 <= -s.pressure_fall_6h_hpa
        rain = a["rain"][i].tolist()
        r1 = _rain(rain[-61:])
        r3 = _rain(rain[-181:])
        fired += r1 >= 25 or r3 >= 76
        for m, limit in (
            ("t_c", 0.1),
            ("rh_pct", 1.0),
            ("p_hpa", 0.1),
            ("wind_ms", 0.5),
            ("wind_dir_deg", 10.0),
        ):
            v = _valid(a["stuck"][m][i, -60:].tolist())
            if len(v) >= 30 and max(v) - min(v) < limit:
                fired += 1
                break
        for m, step in (("t_c", 3.0), ("rh_pct", 15.0), ("p_hpa", 2.0), ("wind_ms", 20.0)):
            x = a["stuck"][m][i, -30:].tolist()
            for j in range(1, len(x) - 1):
                if (x[j] - x[j - 1] > step and x[j] - x[j + 1] > step) or (
                    x[j - 1] - x[j] > step and x[j + 1] - x[j] > step
                ):
                    fired += 1
    n_wa = min(sample, a["level"].shape[0])
    for i in range(n_wa):
        level = a["level"][i, -19:].tolist()
        idx = [j for j, x in enumerate(level) if x == x]
        if not idx:
            continue
        latest = level[idx[-1]]
        if len(idx) > 1 and (latest - level[idx[-2]]) * 10 > fl.max_rise_mm_per_min * max(
            1, idx[-1] - idx[-2]
        ):
            continue
        depth = latest * 10 if latest * 10 > fl.noise_floor_mm else 0.0
        fired += depth >= fl.street_warning_mm
        series = [x * 10 if x * 10 > fl.noise_floor_mm else 0.0 for x in level[-15:]]
        cleaned = []
        for j, x in enumerate(series):
            window = sorted(_valid(series[max(0, j - 2) : j + 3]))
            med = statistics.median(window)
            mad = statistics.median(sorted(abs(v - med) for v in window)) * 1.4826
            cleaned.append(
                math.nan if abs(x - med) > max(fl.spike_mad_k * mad, fl.spike_min_mm) else x
            )
        pts = [(j, y) for j, y in enumerate(cleaned) if y == y]
        if len(pts) >= 3:
            mx = sum(j for j, _ in pts) / len(pts)
            my = sum(y for _, y in pts) / len(pts)
            sxx = sum((j - mx) ** 2 for j, _ in pts)
            slope = sum((j - mx) * (y - my) for j, y in pts) / sxx if sxx else 0.0
            fired += slope * 5 >= fl.drain_rise_warning_mm_per_5min and depth > fl.noise_floor_mm
    n_lp = min(sample, a["on"].shape[0])
    rated, elev = a["rated"], a["elev"]
    for i in range(n_lp):
        on = _last(a["on"][i, -10:].tolist())
        power = _last(a["power"][i, -10:].tolist())
        lux = _last(a["lux"][i, -10:].tolist())
        r = float(rated[i])
        day = elev[i] > li.day_burn.sun_above_deg and (lux != lux or lux > li.day_burn.lux_above)
        fired += day and power > r * li.day_burn.power_pct_of_rated_above / 100
        dark = elev[i] < li.lamp_out.sun_below_deg and (lux != lux or lux < li.photocell_on_lux)
        fired += dark and power < r * li.lamp_out.power_pct_of_rated_below / 100
        norm = sorted(_valid(a["norm"][i, -30:].tolist()))
        if len(norm) >= li.drift_min_on_readings:
            fired += abs((norm[len(norm) // 2] / r - 1) * 100) >= li.power_drift_pct
        states = [x > 0.5 for x in _valid(a["on"][i, -61:].tolist())]
        fired += sum(x != y for x, y in itertools.pairwise(states)) >= li.cycling_switches_per_h
        del on
    return int(fired)


def _rain(xs: list[float]) -> float:
    v = _valid(xs)
    if not v:
        return math.nan
    running = v[0]
    for x in v:
        running = max(running, x)
    return running - v[0]


def _last(xs: list[float]) -> float:
    v = _valid(xs)
    return v[-1] if v else math.nan


# --- the same kernels with pandas rolling windows ------------------------------------------
def core_pandas(a: dict[str, Any], t: Thresholds) -> int:
    s, fl, li = t.storm, t.flood, t.lighting
    fired = 0
    wind = pd.DataFrame(a["wind"].T)
    mean10 = wind.rolling(10, min_periods=1).mean().iloc[-1]
    fired += int((mean10 >= min(s.wind_cap_ms.values())).sum())
    gust = pd.DataFrame(a["gust"].T).rolling(2, min_periods=1).max().iloc[-1]
    fired += int((gust >= s.gust_warning_ms).sum())
    base = wind.shift(1).rolling(10, min_periods=1).min().iloc[-1]
    fired += int(
        ((wind.iloc[-1] >= s.squall.peak_ms) & (wind.iloc[-1] - base >= s.squall.rise_ms)).sum()
    )
    wave = s.semidiurnal_amplitude_hpa * np.cos(
        2 * np.pi * (((a["p_times"] / 3_600_000 + 7) % 24) - 10) / 12
    )
    p = pd.DataFrame(a["p"].T).sub(wave, axis=0).rolling(5, min_periods=1).mean()
    f3 = p.iloc[-1] - p.shift(180).iloc[-1]
    f6 = p.iloc[-1] - p.iloc[4]
    fired += int(((f3 <= -s.pressure_fall_3h_hpa) | (f6 <= -s.pressure_fall_6h_hpa)).sum())
    rain = pd.DataFrame(a["rain"].T).cummax()
    r1 = rain.iloc[-1] - rain.shift(60).iloc[-1]
    r3 = rain.iloc[-1] - rain.shift(180).iloc[-1]
    fired += int(((r1 >= 25) | (r3 >= 76)).sum())
    stuck = pd.Series(False, index=range(a["wind"].shape[0]))
    spikes = pd.Series(0, index=range(a["wind"].shape[0]))
    for m, limit in (
        ("t_c", 0.1),
        ("rh_pct", 1.0),
        ("p_hpa", 0.1),
        ("wind_ms", 0.5),
        ("wind_dir_deg", 10.0),
    ):
        df = pd.DataFrame(a["stuck"][m].T)
        roll = df.rolling(60, min_periods=30)
        stuck |= (roll.max() - roll.min()).iloc[-1] < limit
        step = {"t_c": 3.0, "rh_pct": 15.0, "p_hpa": 2.0, "wind_ms": 20.0}.get(m)
        if step is not None:
            d1, d2 = df - df.shift(1), df - df.shift(-1)
            spike = ((d1 > step) & (d2 > step)) | ((d1 < -step) & (d2 < -step))
            spikes += spike.rolling(30, min_periods=1).sum().iloc[-2].astype(int)
    fired += int(stuck.sum()) + int((spikes > 0).sum())

    depth = pd.DataFrame(a["level"].T * 10).where(lambda d: d > fl.noise_floor_mm, 0.0)
    rise = depth.diff().iloc[-1]
    latest = depth.iloc[-1].where(~(rise > fl.max_rise_mm_per_min))
    fired += int((latest >= fl.street_warning_mm).sum())
    med = depth.rolling(5, center=True, min_periods=1).median()
    mad = (depth - med).abs().rolling(5, center=True, min_periods=1).median() * 1.4826
    clean = depth.where((depth - med).abs() <= np.maximum(fl.spike_mad_k * mad, fl.spike_min_mm))
    x = pd.Series(np.arange(len(clean), dtype=np.float64), index=clean.index)
    slope = clean.rolling(15, min_periods=3).cov(x).iloc[-1] / x.rolling(15).var().iloc[-1]
    fired += int(
        ((slope * 5 >= fl.drain_rise_warning_mm_per_5min) & (latest > fl.noise_floor_mm)).sum()
    )

    on = pd.DataFrame(a["on"].T).ffill().iloc[-1]
    power = pd.DataFrame(a["power"].T).ffill().iloc[-1]
    lux = pd.DataFrame(a["lux"].T).ffill().iloc[-1]
    rated, elev = pd.Series(a["rated"]), pd.Series(a["elev"])
    day = (elev > li.day_burn.sun_above_deg) & (lux.isna() | (lux > li.day_burn.lux_above))
    fired += int((day & (power > rated * li.day_burn.power_pct_of_rated_above / 100)).sum())
    dark = (elev < li.lamp_out.sun_below_deg) & (lux.isna() | (lux < li.photocell_on_lux))
    fired += int((dark & (power < rated * li.lamp_out.power_pct_of_rated_below / 100)).sum())
    drift = (
        pd.DataFrame(a["norm"].T)
        .rolling(30, min_periods=li.drift_min_on_readings)
        .median()
        .iloc[-1]
    )
    fired += int((((drift / rated) - 1).abs() * 100 >= li.power_drift_pct).sum())
    switches = (
        pd.DataFrame(a["on"].T).ffill().diff().abs().rolling(60, min_periods=1).sum().iloc[-1]
    )
    fired += int((switches >= li.cycling_switches_per_h).sum())
    del on
    return fired


# --- running --------------------------------------------------------------------------------
def best_of(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n: int = N_SENSORS) -> dict[str, float]:
    t = load_thresholds()
    rss0 = _rss_mib()
    start = time.perf_counter()
    eng = build_engine(n, thresholds=t)
    build_s = time.perf_counter() - start
    eng.evaluate(NOW)  # warm-up: learns rated powers, opens whatever the data holds
    tick = [NOW + 60_000 * (i + 1) for i in range(ROUNDS)]
    times = []
    for now in tick:
        gc.collect()
        start = time.perf_counter()
        eng.evaluate(now)
        times.append(time.perf_counter() - start)
    engine_s = min(times)
    rss1 = _rss_mib()
    a = arrays(eng)
    numpy_s = best_of(lambda: core_numpy(a, t), ROUNDS)
    pandas_s = best_of(lambda: core_pandas(a, t), 2)
    sample = min(LOOP_SAMPLE, n)
    loop_sample_s = best_of(lambda: core_loop(a, t, sample), 1)
    counts = {"weather": a["wind"].shape[0], "water": a["level"].shape[0], "lamp": a["on"].shape[0]}
    # Scale each family's share of the sample to the fleet: the loop is linear in sensors.
    sampled = sum(min(sample, c) for c in counts.values())
    loop_s = loop_sample_s * sum(counts.values()) / sampled
    return {
        "sensors": n,
        "build_s": build_s,
        "engine_ms": engine_s * 1000,
        "numpy_ms": numpy_s * 1000,
        "loop_ms": loop_s * 1000,
        "pandas_ms": pandas_s * 1000,
        "loop_sample": sampled,
        "engine_mib": eng.memory_bytes() / 2**20,
        "rss_growth_mib": rss1 - rss0,
        "core_sensors": sum(counts.values()),
    }


def main() -> None:
    r = run()
    n = int(r["sensors"])
    print(f"\n## analytics: one evaluation tick over {n:,} sensors (best of {ROUNDS})")
    print("| implementation | ms per tick | time vs core NumPy |")
    print("| --- | ---: | ---: |")
    print(f"| engine tick (every rule, lifecycles, roll-ups) | {r['engine_ms']:,.1f} | — |")
    core = r["numpy_ms"]
    for label, key in (
        ("core rules, NumPy (deltasense kernels)", "numpy_ms"),
        ("core rules, pandas rolling windows", "pandas_ms"),
        (f"core rules, per-sensor Python loop (scaled from {int(r['loop_sample']):,})", "loop_ms"),
    ):
        print(f"| {label} | {r[key]:,.1f} | {r[key] / core:,.1f}× |")
    print(
        f"\nengine tick vs loop: {r['loop_ms'] / r['engine_ms']:,.1f}×, vs pandas: "
        f"{r['pandas_ms'] / r['engine_ms']:,.1f}×; engine arrays {r['engine_mib']:,.0f} MiB, "
        f"peak RSS growth {r['rss_growth_mib']:,.0f} MiB; fleet built in {r['build_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
