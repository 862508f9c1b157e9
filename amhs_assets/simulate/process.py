"""The AMHS simulator's process: knobs, line draws, exogenous inputs, the minute-by-minute queue.

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
6. Observations: waits, completions, transfer times and the other contract columns follow
   from the queue and the vehicles (simulate_observe).
7. Drift. From day `drift_day` on demand is DRIFT_DEMAND_UP higher and DRIFT_FLEET_CUT of the
   fleet is gone.

simulate.simulate_lines runs these for every line, then simulate_observe turns them into columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from tqdm.auto import tqdm

from amhs_assets.contract import FAB_UTC_OFFSET_H, SHIFT_START_HOURS

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


def build_clock(start: pd.Timestamp, n: int) -> Clock:
    """Build the calendar of n minutes whose WARMUP_MIN-th minute is `start`."""
    minute = np.arange(n) - WARMUP_MIN
    first = start + pd.Timedelta(minutes=int(minute[0]) + 60 * FAB_UTC_OFFSET_H)
    local = minute - minute[0] + first.hour * 60 + first.minute
    day = local // DAY
    return Clock(minute, local % DAY, day, (first.weekday() + day) % 7)


def draw_line_params(rng: np.random.Generator) -> LineParams:
    """Draw a line's fleet, demand and layout."""
    fleet = int(rng.integers(*FLEET_RANGE))
    cycle = float(rng.uniform(*CYCLE_FREE_S))
    demand = rng.uniform(*LOAD_RANGE) * fleet * 60.0 / cycle
    return LineParams(fleet, demand, cycle, RAIL_SLOTS_PER_VEHICLE * fleet, int(fleet * 1.8),
                      int(fleet * TOOLS_PER_VEHICLE), int(fleet * rng.uniform(12, 18)),
                      int(rng.integers(PM_EVERY_DAYS)))


def child_rng(rng: np.random.Generator) -> np.random.Generator:
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


def exogenous_inputs(p: LineParams, clock: Clock, rng: np.random.Generator,
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
    ready = child_rng(rng).poisson(lam * bursts)  # lots ready to move
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


def congestion(u: np.ndarray) -> np.ndarray:
    """Cycle-time multiplier at rail utilisation u: convex, steep near capacity."""
    return 1.0 + CONGESTION_A * u / (1.0 - u)


def run_queue(exo: list[dict[str, np.ndarray]], progress: bool) -> dict[str, np.ndarray]:
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
            b = b - b / (hold * congestion(u))  # vehicles released by finished jobs
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
