"""The AMHS simulator behind `amhs simulate`: minute logs of OHT lines, a model, not noise.

Causal chain, per line and minute (knobs in CAPITALS below):

1. Demand. Transfer commands arrive as Poisson counts with a gamma-mixed (bursty) rate:
   base demand (LOAD_RANGE of the fleet's free-flow capacity) x shift level (three shifts at
   SHIFT_START_HOURS, local time FAB_UTC_OFFSET_H) x a dip before and a surge after every
   shift change (SHIFT_DIP, SHIFT_SURGE) x weekday (WEEKDAY_LEVEL) x slow wander (day and
   hour knots) x process tools up (tools down send no lots).
2. Fleet. Vehicles fail at random (VEHICLE_MTBF_DAYS) and wait for repair (mostly quick
   resets, some long repairs); preventive maintenance (PM_*) takes a share of the fleet out on
   a schedule (pm_active = 1). Available = total - down.
3. Rail. Rail utilisation u = busy vehicles / rail slots. Cycle time (empty travel, load,
   loaded travel, unload) grows as 1 + CONGESTION_A u / (1 - u): convex, steep near capacity,
   so a vehicle's throughput (u / cycle) peaks near u = 0.53 and falls beyond; the dispatcher
   holds u under DISPATCH_U_CAP, just past that peak.
4. Queue (the only sequential part). Commands queue; each minute, vehicles released by
   finished jobs and idle vehicles take the oldest commands; queued commands are cancelled at
   CANCEL_PER_MIN. Queue(t) = Queue(t-1) + requested - dispatched - cancelled. The fab is a
   closed loop: lots waiting at full load ports keep tools from releasing more, so a backlog of
   PORT_BACKLOG_MIN minutes of demand halves new requests. Vehicles are released at
   busy / cycle time (Little's law), so a slow rail also means fewer free vehicles.
5. Incidents. Rail blockages (INCIDENTS_PER_DAY) are announced 5-20 min ahead
   (INCIDENT_LEAD_MIN) by rising comm errors, retries and minor alarms and a slight slowdown
   (PRECURSOR_SLOWDOWN); some are silent (SILENT_SHARE) and some warnings lead to nothing
   (FALSE_ALARMS_PER_DAY). During a blockage alarms_major fire, segments are blocked, rail
   slots shrink, detours lengthen (DETOUR) and vehicles behind the block stand still (STALL),
   so the queue and transfer times blow up. Speed restrictions (SLOWDOWNS_PER_DAY) stretch
   cycle times for about 45 min without any alarm, only re-routes.
6. Observations. Waits follow the queue first-in first-out (Little's law made exact); jobs
   complete as vehicles are released, in dispatch order; transfer time = queue wait + time on
   the vehicle, recorded in the minute the job completes (empty when none does); min/max come
   from the spread of waits and travel distances. Stockers, ports, hoists, WIP and congested
   segments follow the load.
7. Drift. From day `drift_day` on demand is DRIFT_DEMAND_UP higher and DRIFT_FLEET_CUT of the
   fleet is gone.

Calibration (SPEC section 2 thresholds, 25-minute horizon, default data): about 75% NORMAL,
18% WARNING, 7% CRITICAL; transfer times around 190-250 s in normal operation.
Deterministic per seed: line i draws everything from numpy Generator([seed, i]).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from tqdm.auto import tqdm

from amhs_assets.contract import (
    FAB_UTC_OFFSET_H,
    INTEGER_COLUMNS,
    RAW_COLUMNS,
    SHIFT_START_HOURS,
    TRANSFER_TIME_COLUMNS,
)

DEFAULT_LINES = 3
DEFAULT_DAYS = 30
DEFAULT_SEED = 7
DEFAULT_START = "2026-01-05"

# --- knobs ---------------------------------------------------------------------------------
SHIFT_LEVEL = (1.05, 1.0, 0.85)  # day, swing, night
SHIFT_DIP, SHIFT_SURGE = 0.30, 0.28  # handover dip, then the backlog surge
WEEKDAY_LEVEL = (1.0, 1.0, 1.0, 1.0, 1.0, 0.88, 0.8)  # Monday .. Sunday
DAY_WANDER_SD, HOUR_WANDER_SD, BURST_SHAPE = 0.035, 0.05, 40.0
LOAD_RANGE = (0.355, 0.375)  # mean demand / free-flow fleet capacity
FLEET_RANGE = (140, 260)
CYCLE_FREE_S = (125.0, 145.0)  # empty + loaded travel + two hoists, empty rail
HOIST_S = 15.0
RAIL_SLOTS_PER_VEHICLE = 1.55
CONGESTION_A, DISPATCH_U_CAP, U_MAX = 0.8, 0.6, 0.97
CANCEL_PER_MIN = 0.01
PORT_BACKLOG_MIN = 15.0  # queue (in minutes of demand) that halves new requests
VEHICLE_MTBF_DAYS, QUICK_FIX_SHARE = 3.0, 0.8
P_MAJOR_ON_FAILURE = 0.005
PM_EVERY_DAYS, PM_START_LOCAL_H, PM_HOURS, PM_FLEET_SHARE = 3, 9, (2.0, 4.0), (0.08, 0.15)
TOOL_MTBF_DAYS, TOOLS_PER_VEHICLE = 20.0, 1.5
INCIDENTS_PER_DAY, FALSE_ALARMS_PER_DAY, SILENT_SHARE = 0.9, 1.0, 0.15
INCIDENT_LEAD_MIN, INCIDENT_MEDIAN_MIN, INCIDENT_SEVERITY = (5, 20), 25.0, (0.3, 0.98)
SLOWDOWNS_PER_DAY, SLOWDOWN_MEDIAN_MIN, SLOWDOWN_EXTRA = 1.5, 45.0, (0.15, 0.45)
PRECURSOR_SLOWDOWN, DETOUR, STALL, MAJOR_PER_MIN = 0.15, 1.5, 1.0, 0.25
TRAVEL_CV, V_FREE_MPS = 0.3, 4.2  # spread of travel distances; free-flow speed
DRIFT_DEMAND_UP, DRIFT_FLEET_CUT = 0.30, 0.20
WARMUP_MIN = 240  # simulated before `start` so the queue is in steady state at the first row

DAY = 1440
MAX_TIME_S = 86400.0


@dataclass(frozen=True)
class LineParams:
    """What makes one line differ from another."""

    fleet: int
    demand: float  # mean requested jobs per minute
    cycle_s: float  # free-flow cycle time
    rail_slots: float
    segments: int
    tools: int
    base_wip: int
    pm_phase: int


@dataclass(frozen=True)
class Clock:
    """Calendar of every simulated minute: offset from start, local time of day, weekday."""

    minute: np.ndarray  # minutes since start (negative in the warm-up)
    tod: np.ndarray  # local minute of day
    local_day: np.ndarray  # local day number, 0 = the day holding the first minute
    weekday: np.ndarray


def _clock(start: pd.Timestamp, n: int) -> Clock:
    """Build the calendar of n minutes whose WARMUP_MIN-th minute is `start`."""
    minute = np.arange(n) - WARMUP_MIN
    first = start + pd.Timedelta(minutes=int(minute[0]) + 60 * FAB_UTC_OFFSET_H)
    local = minute - minute[0] + first.hour * 60 + first.minute
    day = local // DAY
    return Clock(minute, local % DAY, day, (first.weekday() + day) % 7)


def _line_params(rng: np.random.Generator) -> LineParams:
    """Draw a line's fleet, demand and layout."""
    fleet = int(rng.integers(*FLEET_RANGE))
    cycle = float(rng.uniform(*CYCLE_FREE_S))
    demand = rng.uniform(*LOAD_RANGE) * fleet * 60.0 / cycle
    return LineParams(fleet, demand, cycle, RAIL_SLOTS_PER_VEHICLE * fleet, int(fleet * 1.8),
                      int(fleet * TOOLS_PER_VEHICLE), int(fleet * rng.uniform(12, 18)),
                      int(rng.integers(PM_EVERY_DAYS)))


def _child(rng: np.random.Generator) -> np.random.Generator:
    """A child generator for one draw whose bit use depends on the state (Poisson, binomial),
    so that the parent's later draws never shift: a drift run equals the plain run before it."""
    return rng.spawn(1)[0]


def _events(n: int, starts: np.ndarray, lengths: np.ndarray, heights: np.ndarray,
            ramp: bool = False) -> np.ndarray:
    """Sum of boxes (or ramps rising to `heights`) over [start, start+length), clipped to n."""
    lengths = np.maximum(lengths.astype(np.int64), 1)
    offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    idx = np.repeat(starts.astype(np.int64), lengths) + offset
    vals = np.repeat(np.asarray(heights, float) * np.ones(len(lengths)), lengths)
    if ramp:
        vals = vals * (offset + 1) / np.repeat(lengths, lengths)
    keep = (idx >= 0) & (idx < n)
    return np.bincount(idx[keep], vals[keep], minlength=n)


def _bump(tod: np.ndarray, centre_min: float, width_min: float) -> np.ndarray:
    """Gaussian bump over the circular local time of day."""
    d = (tod - centre_min + DAY / 2) % DAY - DAY / 2
    return np.exp(-0.5 * (d / width_min) ** 2)


def _wander(rng: np.random.Generator, clock: Clock) -> np.ndarray:
    """Slow multiplicative wander: AR(1) day knots plus independent two-hour knots."""
    n = len(clock.minute)
    days = int(clock.local_day[-1]) + 2
    day_knots = lfilter([1.0], [1.0, -0.7], rng.normal(0, DAY_WANDER_SD, days))
    hour_knots = rng.normal(0, HOUR_WANDER_SD, n // 120 + 2)
    t = np.arange(n)
    log_w = np.interp(clock.local_day + clock.tod / DAY, np.arange(days), day_knots)
    return np.exp(log_w + np.interp(t / 120.0, np.arange(len(hour_knots)), hour_knots))


def _demand(p: LineParams, clock: Clock, rng: np.random.Generator, tools_down: np.ndarray,
            drift: np.ndarray) -> np.ndarray:
    """Expected transfer commands per minute: shifts, handovers, weekdays, wander, drift."""
    starts = np.array(SHIFT_START_HOURS) * 60
    shift = np.searchsorted(starts, clock.tod, side="right") - 1  # -1: before the first
    level = np.array(SHIFT_LEVEL)[shift]  # index -1 is the night shift, as it should be
    for s in starts:
        level = level * (1 - SHIFT_DIP * _bump(clock.tod, s - 5, 10)
                         + SHIFT_SURGE * _bump(clock.tod, s + 35, 22))
    week = np.array(WEEKDAY_LEVEL)[clock.weekday]
    tools_up = 1.0 - tools_down / p.tools
    return p.demand * level * week * _wander(rng, clock) * tools_up * (1 + DRIFT_DEMAND_UP * drift)


def _failures(n: int, units: np.ndarray, mtbf_days: float, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random failures of `units` (per minute) with repair times: (down count, onsets, lengths)."""
    count = rng.poisson(units.max() * n / (mtbf_days * DAY))
    onsets = rng.integers(0, n, count)
    keep = rng.random(count) < units[onsets] / units.max()  # fewer units, fewer failures
    quick = rng.random(count) < QUICK_FIX_SHARE
    minutes = np.where(quick, rng.lognormal(np.log(8), 0.5, count),
                       rng.lognormal(np.log(90), 0.6, count))
    onsets, minutes = onsets[keep], minutes[keep]
    down = _events(n, onsets, np.ceil(minutes), 1.0)
    return down, onsets, np.ceil(minutes)


def _pm_windows(p: LineParams, clock: Clock, total: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Scheduled PM windows every PM_EVERY_DAYS local days: (vehicles out, pm_active)."""
    n = len(clock.minute)
    days = np.arange(int(clock.local_day[-1]) + 1)
    days = days[(days + p.pm_phase) % PM_EVERY_DAYS == 0]
    day_start = np.searchsorted(clock.local_day, days)  # index of each day's first minute
    jitter = rng.integers(0, 30, len(days))
    starts = day_start - clock.tod[day_start] + PM_START_LOCAL_H * 60 + jitter
    lengths = np.round(rng.uniform(*PM_HOURS, len(days)) * 60)
    share = rng.uniform(*PM_FLEET_SHARE, len(days))
    starts_c = np.clip(starts, 0, n - 1)
    out = _events(n, starts, lengths, np.round(share * total[starts_c]))
    return out, (_events(n, starts, lengths, 1.0) > 0).astype(np.int64)


def _incidents(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Rail blockages and their precursors: signal 0..1, severity, blocked segments, onsets."""
    k = rng.poisson(INCIDENTS_PER_DAY * n / DAY)
    onset = np.sort(rng.integers(30, max(n - 1, 31), k))
    lead = rng.integers(INCIDENT_LEAD_MIN[0], INCIDENT_LEAD_MIN[1] + 1, k)
    length = np.clip(np.round(rng.lognormal(np.log(INCIDENT_MEDIAN_MIN), 0.5, k)), 8, 120)
    strength = np.where(rng.random(k) < SILENT_SHARE, 0.0, rng.uniform(0.4, 1.0, k))
    sev = rng.uniform(*INCIDENT_SEVERITY, k)
    blocked = rng.integers(1, 5, k)
    f = rng.poisson(FALSE_ALARMS_PER_DAY * n / DAY)
    f_on = rng.integers(0, n, f)
    f_lead = rng.integers(INCIDENT_LEAD_MIN[0], INCIDENT_LEAD_MIN[1] + 1, f)
    f_len, f_str = rng.integers(3, 12, f), rng.uniform(0.3, 0.9, f)
    prec = (_events(n, onset - lead, lead, strength, ramp=True)
            + _events(n, onset, length, strength)
            + _events(n, f_on - f_lead, f_lead, f_str, ramp=True) + _events(n, f_on, f_len, f_str))
    return {"precursor": np.minimum(prec, 1.5),
            "severity": np.minimum(_events(n, onset, length, sev), 0.98),
            "blocked": _events(n, onset, length, blocked).astype(np.int64),
            "onsets": _events(n, onset, np.ones(k), 1.0)}


def _slowdowns(n: int, rng: np.random.Generator) -> np.ndarray:
    """Extra cycle-time share from speed restrictions (a segment under repair, a slow vehicle)."""
    k = rng.poisson(SLOWDOWNS_PER_DAY * n / DAY)
    length = np.round(rng.lognormal(np.log(SLOWDOWN_MEDIAN_MIN), 0.5, k))
    return _events(n, rng.integers(0, n, k), length, rng.uniform(*SLOWDOWN_EXTRA, k))


def _exogenous(p: LineParams, clock: Clock, rng: np.random.Generator,
               drift_day: float | None) -> dict[str, np.ndarray]:
    """Everything that does not depend on the queue, for one line, vectorised over minutes."""
    n = len(clock.minute)
    drift = np.zeros(n) if drift_day is None else (clock.minute >= DAY * drift_day).astype(float)
    total = np.round(p.fleet * (1 - DRIFT_FLEET_CUT * drift)).astype(np.int64)
    tools_down, _, _ = _failures(n, np.full(n, p.tools), TOOL_MTBF_DAYS, rng)
    fail_down, fail_on, fail_len = _failures(n, total.astype(float), VEHICLE_MTBF_DAYS, rng)
    pm_out, pm_active = _pm_windows(p, clock, total, rng)
    inc = _incidents(n, rng)
    slow = _slowdowns(n, rng)
    down = np.minimum(fail_down + pm_out + (inc["severity"] > 0), total).astype(np.int64)
    lam = _demand(p, clock, rng, tools_down, drift)
    bursts = rng.gamma(BURST_SHAPE, 1 / BURST_SHAPE, n)
    ready = _child(rng).poisson(lam * bursts)  # lots ready to move
    rail = p.rail_slots * (1 - 0.5 * inc["severity"])
    cycle_min = (p.cycle_s / 60 * (1 + DETOUR * inc["severity"]) * (1 + slow)
                 * (1 + PRECURSOR_SLOWDOWN * inc["precursor"]))
    return {"lam": lam, "ready": ready.astype(float), "total": total, "down": down,
            "pm_active": pm_active, "tools_down": tools_down.astype(np.int64),
            "fail_onsets": _events(n, fail_on, np.ones(len(fail_on)), 1.0),
            "fail_blocked": _events(n, fail_on, np.minimum(fail_len, 3), 1.0),
            "rail": rail, "cycle_min": cycle_min,
            "hold_min": cycle_min / (1 - STALL * inc["severity"]),  # stalled: no deliveries
            "limit": np.minimum(total - down, DISPATCH_U_CAP * rail),
            "backlog_jobs": PORT_BACKLOG_MIN * p.demand, "slowdown": slow,
            "r_arrive": rng.random(n), "r_dispatch": rng.random(n), "r_cancel": rng.random(n),
            **inc}


def _congestion(u: np.ndarray) -> np.ndarray:
    """Cycle-time multiplier at rail utilisation u: convex, steep near capacity."""
    return 1.0 + CONGESTION_A * u / (1.0 - u)


def _run_queue(exo: list[dict[str, np.ndarray]], progress: bool) -> dict[str, np.ndarray]:
    """The sequential part: queue and busy vehicles, minute by minute, all lines at once."""
    cols = ("ready", "rail", "hold_min", "limit", "r_arrive", "r_dispatch", "r_cancel")
    rows = [np.ascontiguousarray(np.stack([e[c] for e in exo], 1)) for c in cols]
    rows[1] = 1.0 / rows[1]  # rail slots -> their inverse, one division less per minute
    n, n_lines = rows[0].shape
    per_backlog = np.array([1.0 / e["backlog_jobs"] for e in exo])
    keep = 1.0 - CANCEL_PER_MIN
    q, b = np.zeros(n_lines), np.zeros(n_lines)
    requested, queue, busy, dispatched = [], [], [], []  # one array of lines per minute
    with tqdm(total=n, disable=not progress, unit="min", desc="simulating") as bar:
        for t, (ready, per_slot, hold, limit, r_a, r_d, r_c) in enumerate(zip(*rows)):
            u = np.minimum(b * per_slot, U_MAX)
            b = b - b / (hold * _congestion(u))  # vehicles released by finished jobs
            a = np.floor(ready / (1.0 + q * per_backlog) + r_a)  # full ports hold lots back
            waiting = q + a
            d = np.minimum(waiting, np.floor(np.maximum(limit - b, 0.0) + r_d))
            q = np.ceil((waiting - d) * keep - r_c)  # = left - floor(left * CANCEL + r_c)
            b = b + d
            requested.append(a), queue.append(q), busy.append(b), dispatched.append(d)
            if t % DAY == DAY - 1 or t == n - 1:
                bar.update(t + 1 - bar.n)
    return {"requested": np.array(requested), "queue": np.array(queue), "busy": np.array(busy),
            "dispatched": np.array(dispatched)}


def _fifo_waits(arrivals: np.ndarray, dispatched: np.ndarray, cancelled: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queue wait (min) of the middle, oldest and newest job dispatched in each minute, FIFO."""
    n = len(arrivals)
    arr_cum = np.concatenate([[0.0], np.cumsum(arrivals)])
    out_before = np.concatenate([[0.0], np.cumsum(dispatched + cancelled)[:-1]])
    t = np.arange(n)

    def wait(k: np.ndarray, at: np.ndarray) -> np.ndarray:
        return np.maximum(at - np.interp(k, arr_cum, np.arange(n + 1.0)), 0.0)

    d = np.maximum(dispatched, 1.0)
    return (wait(out_before + d / 2, t + 0.5), wait(out_before + 0.5, t + 0.5 / d),
            wait(out_before + d - 0.5, t + 1 - 0.5 / d))


def _completions(dispatched: np.ndarray, released: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Jobs completed per minute (vehicles released, FIFO) and dispatch times of mid/first/last."""
    n = len(dispatched)
    grid = np.arange(n + 1.0)
    cum_d = np.concatenate([[0.0], np.cumsum(dispatched)])
    cum_r = np.floor(np.concatenate([[0.0], np.cumsum(released)]) + 1e-9)
    first, last = cum_r[:-1], cum_r[1:]

    def dispatched_at(k: np.ndarray) -> np.ndarray:
        return np.interp(k, cum_d, grid)

    return ((last - first).astype(np.int64), dispatched_at((first + last) / 2),
            dispatched_at(first + 0.5), dispatched_at(last - 0.5))


def _transfer_columns(e: dict, s: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Waits, travel and transfer times (s): FIFO through the queue and through the vehicles."""
    n = len(e["ready"])
    travel = s["cycle_min"] * 60.0 - 2 * HOIST_S
    waits = _fifo_waits(s["requested"], s["dispatched"], s["cancelled"])
    w_mid, w_old, w_new = (w * 60.0 for w in waits)
    completed, t_mid, t_first, t_last = _completions(s["dispatched"], s["released"])
    at = np.clip(t_mid.astype(np.int64), 0, n - 1)
    now = np.arange(n) + 0.5

    def transfer(t_disp: np.ndarray) -> np.ndarray:
        i = np.clip(t_disp.astype(np.int64), 0, n - 1)
        return np.maximum(now - t_disp, 0.0) * 60.0 + w_mid[i] + 2 * HOIST_S

    n_done = np.maximum(completed, 1)
    sd_job = np.hypot(TRAVEL_CV * travel[at], (w_old - w_new)[at] / np.sqrt(12.0)) + 2.0
    avg = transfer(t_mid) + sd_job / np.sqrt(n_done) * rng.standard_normal(n)
    avg = np.maximum(avg, 2 * HOIST_S + 0.5 * travel[at])
    ends = (transfer(t_first), transfer(t_last))
    reach = sd_job * np.sqrt(2 * np.log(n_done)) * (1 + 0.1 * np.abs(rng.standard_normal(n)))
    hi = np.maximum.reduce([avg, *ends]) + reach
    lo = np.maximum(np.minimum.reduce([avg, *ends]) - reach, 2 * HOIST_S + 0.3 * travel[at])
    times = np.minimum((avg, np.maximum(hi, avg), np.minimum(lo, avg)), MAX_TIME_S)  # avg, max, min
    wait = w_mid + 4.0 + 0.3 * travel * (1 + rng.normal(0, 0.05, n))
    travel_obs = 0.7 * travel * (1 + TRAVEL_CV * rng.standard_normal(n) / np.sqrt(n_done))
    return {"jobs_completed": completed, "wait_time_avg_s": np.minimum(wait, MAX_TIME_S),
            "travel_time_avg_s": np.minimum(travel_obs, MAX_TIME_S),
            **{c: np.where(completed == 0, np.nan, v)
               for c, v in zip(TRANSFER_TIME_COLUMNS, times)}}


def _rail_columns(p: LineParams, e: dict, s: dict, rng: np.random.Generator
                  ) -> dict[str, np.ndarray]:
    """Fleet counts, rail utilisation, speed and segments."""
    n = len(e["ready"])
    avail = e["total"] - e["down"]
    active = np.minimum(np.round(s["busy"]).astype(np.int64), avail)
    u = np.minimum((active + 0.1 * (avail - active)) / e["rail"], 1.0)
    blocked = e["blocked"] + np.round(e["fail_blocked"]).astype(np.int64)
    slow = _congestion(s["u"]) * (1 + 0.5 * DETOUR * e["severity"]) * (1 + e["slowdown"])
    return {"vehicles_total": e["total"], "vehicles_active": active,
            "vehicles_idle": avail - active, "vehicles_down": e["down"],
            "vehicle_speed_avg_mps": np.clip(V_FREE_MPS / slow + rng.normal(0, 0.05, n), 0.05, 10),
            "congested_segments": _child(rng).poisson(p.segments * 0.5 * u**6 + 4 * blocked),
            "blocked_segments": blocked,
            "rail_utilization_pct": np.clip(100 * u + rng.normal(0, 0.7, n), 0, 100)}


def _alarm_columns(e: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Alarms, comm errors and retries: precursors, blockages and vehicle failures."""
    prec, blocking = e["precursor"], (e["severity"] > 0).astype(float)
    fails = np.round(e["fail_onsets"]).astype(np.int64)
    onsets = np.round(e["onsets"]).astype(np.int64)
    burst = 1 + _child(rng).poisson(1.0, len(prec))  # major alarms at a blockage's onset
    major = (_child(rng).poisson(MAJOR_PER_MIN * blocking) + onsets * burst
             + _child(rng).binomial(fails, P_MAJOR_ON_FAILURE))
    reroutes = 0.4 + 4.0 * prec + 3.0 * e["severity"] + 4.0 * e["slowdown"]
    return {"alarms_minor": _child(rng).poisson(0.15 + 2.0 * prec + blocking) + fails,
            "alarms_major": major,
            "comm_errors": _child(rng).poisson(0.3 + 5.0 * prec + 2.0 * blocking),
            "retry_count": _child(rng).poisson(reroutes) + fails}


def _material_columns(p: LineParams, e: dict, s: dict, completed: np.ndarray,
                      rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stockers, load ports, hoists and WIP, driven by the flow of lots."""
    n = len(e["ready"])
    d = s["dispatched"].astype(np.int64)
    s_in, s_out = _child(rng).binomial(completed, 0.38), _child(rng).binomial(d, 0.38)
    stock = lfilter([1.0], [1.0, -0.998], (s_in - s_out).astype(float))
    load = e["lam"] / p.demand
    backlog = 1 - np.exp(-s["queue"] / (2 * p.demand))
    port = np.clip(25 + 30 * load + 35 * backlog + rng.normal(0, 2, n), 0, 100)
    slow_load = lfilter([1 / 240], [1.0, -(1 - 1 / 240)], load, zi=[1 - 1 / 240])[0]
    wip = p.base_wip * (0.85 + 0.15 * slow_load) + s["queue"] + 4 * e["tools_down"]
    hoist = HOIST_S * (1 + 0.5 * (port / 100) ** 2) + rng.normal(0, 0.6, n)  # port handshakes
    return {"stocker_in": s_in, "stocker_out": s_out,
            "stocker_util_pct": np.clip(60 + 100 * stock / (8 * p.fleet) + 0.1 * e["tools_down"],
                                        0, 100),
            "port_busy_pct": port, "hoist_ops": d + completed,
            "hoist_time_avg_s": np.clip(hoist, 1, 600),
            "wip_lots": np.round(wip + rng.normal(0, 3, n)).astype(np.int64),
            "tool_down_count": e["tools_down"]}


def _observe(line_id: str, p: LineParams, e: dict, s: dict, start: pd.Timestamp,
             rng: np.random.Generator) -> pd.DataFrame:
    """Turn one line's state into the 32 contract columns, warm-up dropped."""
    busy_start = np.concatenate([[0.0], s["busy"][:-1]])
    s["u"] = np.minimum(busy_start / e["rail"], U_MAX)
    s["cycle_min"] = e["cycle_min"] * _congestion(s["u"])
    s["released"] = busy_start / (e["hold_min"] * _congestion(s["u"]))
    queued_before = np.concatenate([[0.0], s["queue"][:-1]])
    s["cancelled"] = queued_before + s["requested"] - s["dispatched"] - s["queue"]
    cols = _transfer_columns(e, s, rng)
    cols.update(_rail_columns(p, e, s, rng), **_alarm_columns(e, rng))
    cols.update(_material_columns(p, e, s, cols["jobs_completed"], rng))
    cols.update(jobs_requested=s["requested"], jobs_queued=s["queue"],
                jobs_cancelled=s["cancelled"], pm_active=e["pm_active"])
    keep = slice(WARMUP_MIN, None)
    n_out = len(e["ready"]) - WARMUP_MIN
    frame = pd.DataFrame({c: np.asarray(v)[keep] for c, v in cols.items()})
    frame.insert(0, "line_id", line_id)
    frame.insert(0, "timestamp", pd.date_range(start, periods=n_out, freq="min"))
    for c in INTEGER_COLUMNS:
        frame[c] = frame[c].round().astype(np.int64)
    floats = [c for c in RAW_COLUMNS if c not in (*INTEGER_COLUMNS, "timestamp", "line_id")]
    frame[floats] = frame[floats].astype(float).round(2)
    frame["vehicle_speed_avg_mps"] = frame["vehicle_speed_avg_mps"].round(3)
    return frame[list(RAW_COLUMNS)]


def _as_utc(start: pd.Timestamp | str) -> pd.Timestamp:
    """A start time as a tz-aware UTC timestamp (naive means UTC)."""
    ts = pd.Timestamp(start)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def simulate_lines(line_ids: Sequence[str], start: pd.Timestamp, days: float, seed: int,
                   drift_day: float | None = None, progress: bool = False
                   ) -> dict[str, pd.DataFrame]:
    """Simulate lines minute by minute: one DataFrame of the 32 contract columns per line."""
    start = _as_utc(start)
    n = int(round(days * DAY)) + WARMUP_MIN
    clock = _clock(start, n)
    rngs = [np.random.default_rng([seed, i]) for i in range(len(line_ids))]
    params = [_line_params(r) for r in rngs]
    exo = [_exogenous(p, clock, r, drift_day) for p, r in zip(params, rngs)]
    state = _run_queue(exo, progress)
    frames = {}
    for i, line_id in enumerate(line_ids):
        line_state = {k: v[:, i].copy() for k, v in state.items()}
        frames[line_id] = _observe(line_id, params[i], exo[i], line_state, start, rngs[i])
        exo[i] = {}  # a year of inputs is ~100 MB per line: free it as soon as it is observed
    return frames


def line_names(count: int) -> list[str]:
    """Line ids: 'OHT-A', 'OHT-B', ... up to 26 lines, else 'LINE01', 'LINE02', ..."""
    if count <= 26:
        return [f"OHT-{c}" for c in string.ascii_uppercase[:count]]
    return [f"LINE{i + 1:02d}" for i in range(count)]


def write_frame_by_day(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write one line's frame as one CSV per UTC day: out_dir/<line>/<line>_<YYYY-MM-DD>.csv."""
    line_id = str(frame["line_id"].iat[0])
    folder = Path(out_dir) / line_id
    folder.mkdir(parents=True, exist_ok=True)
    utc = frame["timestamp"].dt.tz_convert(None).to_numpy().astype("datetime64[s]")
    text = frame.assign(timestamp=np.char.add(np.datetime_as_string(utc, unit="s"), "Z"))
    day = utc.astype("datetime64[D]")
    days, first = np.unique(day, return_index=True)
    bounds = [*first[1:], len(frame)]
    paths = []
    for d, lo, hi in zip(days, first, bounds):
        path = folder / f"{line_id}_{d}.csv"
        text.iloc[lo:hi].to_csv(path, index=False, na_rep="")
        paths.append(path)
    return paths


def write_simulation(out_dir: Path, lines: int = DEFAULT_LINES, days: int = DEFAULT_DAYS,
                     seed: int = DEFAULT_SEED, drift_day: int | None = None,
                     start: str = DEFAULT_START, progress: bool = True) -> list[Path]:
    """Simulate `lines` lines for `days` days, write one CSV per line and day, return the paths."""
    frames = simulate_lines(line_names(lines), pd.Timestamp(start), days, seed, drift_day, progress)
    paths: list[Path] = []
    for frame in tqdm(frames.values(), disable=not progress, desc="writing", unit="line"):
        paths.extend(write_frame_by_day(frame, Path(out_dir)))
    return paths
