"""The AMHS simulator's observations: one line's simulated state as the 32 contract columns.

Step 6 of the causal chain in simulate_process: waits follow the queue first-in first-out
(Little's law made exact); jobs complete as vehicles are released, in dispatch order; transfer
time = queue wait + time on the vehicle, recorded in the minute the job completes (empty when
none does); min/max come from the spread of waits and travel distances. Stockers, ports, hoists,
WIP and congested segments follow the load.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from amhs_assets.contract import INTEGER_COLUMNS, RAW_COLUMNS, TRANSFER_TIME_COLUMNS
from amhs_assets.simulate.process import (
    DETOUR,
    HOIST_S,
    MAJOR_PER_MIN,
    MAX_TIME_S,
    P_MAJOR_ON_FAILURE,
    TRAVEL_CV,
    U_MAX,
    V_FREE_MPS,
    WARMUP_MIN,
    LineParams,
    child_rng,
    congestion,
)


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
    slow = congestion(s["u"]) * (1 + 0.5 * DETOUR * e["severity"]) * (1 + e["slowdown"])
    return {"vehicles_total": e["total"], "vehicles_active": active,
            "vehicles_idle": avail - active, "vehicles_down": e["down"],
            "vehicle_speed_avg_mps": np.clip(V_FREE_MPS / slow + rng.normal(0, 0.05, n), 0.05, 10),
            "congested_segments": child_rng(rng).poisson(p.segments * 0.5 * u**6 + 4 * blocked),
            "blocked_segments": blocked,
            "rail_utilization_pct": np.clip(100 * u + rng.normal(0, 0.7, n), 0, 100)}


def _alarm_columns(e: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Alarms, comm errors and retries: precursors, blockages and vehicle failures."""
    prec, blocking = e["precursor"], (e["severity"] > 0).astype(float)
    fails = np.round(e["fail_onsets"]).astype(np.int64)
    onsets = np.round(e["onsets"]).astype(np.int64)
    burst = 1 + child_rng(rng).poisson(1.0, len(prec))  # major alarms at a blockage's onset
    major = (child_rng(rng).poisson(MAJOR_PER_MIN * blocking) + onsets * burst
             + child_rng(rng).binomial(fails, P_MAJOR_ON_FAILURE))
    reroutes = 0.4 + 4.0 * prec + 3.0 * e["severity"] + 4.0 * e["slowdown"]
    return {"alarms_minor": child_rng(rng).poisson(0.15 + 2.0 * prec + blocking) + fails,
            "alarms_major": major,
            "comm_errors": child_rng(rng).poisson(0.3 + 5.0 * prec + 2.0 * blocking),
            "retry_count": child_rng(rng).poisson(reroutes) + fails}


def _material_columns(p: LineParams, e: dict, s: dict, completed: np.ndarray,
                      rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Stockers, load ports, hoists and WIP, driven by the flow of lots."""
    n = len(e["ready"])
    d = s["dispatched"].astype(np.int64)
    s_in, s_out = child_rng(rng).binomial(completed, 0.38), child_rng(rng).binomial(d, 0.38)
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


def observe_line(line_id: str, p: LineParams, e: dict, s: dict, start: pd.Timestamp,
             rng: np.random.Generator) -> pd.DataFrame:
    """Turn one line's state into the 32 contract columns, warm-up dropped."""
    busy_start = np.concatenate([[0.0], s["busy"][:-1]])
    s["u"] = np.minimum(busy_start / e["rail"], U_MAX)
    s["cycle_min"] = e["cycle_min"] * congestion(s["u"])
    s["released"] = busy_start / (e["hold_min"] * congestion(s["u"]))
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
