"""CRITICAL alarms as operators live them: an operating point chosen for a precision target,
alarm episodes, false alarms per line and shift, lead time, and the Brier score. Numpy only.

A row is one line and minute; its label at horizon h says whether the coming h minutes hold a
CRITICAL minute. An *alarm* is P(CRITICAL) >= threshold. Consecutive alarm minutes of a line
form one alarm episode (what an operator sees as one page); consecutive CRITICAL labels of a
line form one CRITICAL episode, whose event starts h minutes after its first labelled minute
(the first minute whose window reaches it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amhs_assets.config import setting
from amhs_assets.contract import STATES

CRITICAL = STATES.index("CRITICAL")
SHIFT_MIN = 12 * 60
EARLY_MIN = 5  # an episode "caught early" has an alarm at least this many minutes ahead


@dataclass(frozen=True)
class AlarmConfig:
    """How the CRITICAL operating point is chosen on the validation rows."""

    min_precision: float = setting(
        0.5, "the CRITICAL threshold is the lowest P(CRITICAL) whose validation precision "
             "reaches this (most recall at that precision)")
    default_threshold: float = setting(
        0.5, "threshold when the validation rows hold no CRITICAL minute")


def choose_threshold(p_critical: np.ndarray, is_critical: np.ndarray,
                     config: AlarmConfig = AlarmConfig()) -> float:
    """The lowest threshold whose precision on these rows reaches config.min_precision (the
    most recall at that precision); the most precise threshold when none reaches it."""
    p = np.asarray(p_critical, float)
    y = np.asarray(is_critical, bool)
    known = ~np.isnan(p)
    p, y = p[known], y[known]
    if not y.any():
        return float(config.default_threshold)
    order = np.argsort(-p, kind="stable")
    p_sorted, hits = p[order], np.cumsum(y[order])
    last = np.r_[p_sorted[1:] != p_sorted[:-1], True]  # cut after each distinct probability
    cut_p, cut_hits = p_sorted[last], hits[last]
    precision = cut_hits / (np.flatnonzero(last) + 1)
    good = np.flatnonzero(precision >= config.min_precision)
    if len(good):
        return float(cut_p[good[-1]])
    return float(cut_p[int(np.argmax(precision))])


def episode_starts(flags: np.ndarray, line_id: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """Where an episode of consecutive flagged minutes of one line starts (rows sorted by line
    and time; `minutes` counts whole minutes)."""
    flags = np.asarray(flags, bool)
    same = np.r_[False, (line_id[1:] == line_id[:-1]) & (np.diff(minutes) == 1)]
    previous = np.r_[False, flags[:-1]]
    return flags & ~(previous & same)


def _episode_ids(flags: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Episode number of each flagged row (-1 elsewhere)."""
    ids = np.cumsum(starts) - 1
    return np.where(flags, ids, -1)


def brier_score(proba: np.ndarray, state: np.ndarray) -> float | None:
    """Mean over rows of the squared distance between the class probabilities and the one-hot
    actual state (0 is perfect, 2 is worst); None without labelled rows."""
    state = np.asarray(state, int)
    known = state >= 0
    if not known.any():
        return None
    onehot = np.eye(proba.shape[1])[state[known]]
    return float(np.mean(np.sum((proba[known] - onehot) ** 2, axis=1)))


def alarm_metrics(p_critical: np.ndarray, state: np.ndarray, line_id: np.ndarray,
                  timestamp: np.ndarray, horizon: int, threshold: float) -> dict:
    """Precision and recall of CRITICAL minutes at the threshold, false alarm episodes per line
    per 12-hour shift, and the lead time of the CRITICAL episodes (None where undefined)."""
    ts = np.asarray(timestamp).astype("datetime64[m]").astype(np.int64)
    line = np.asarray(line_id)
    order = np.lexsort((ts, line))
    line, ts = line[order], ts[order]
    state = np.asarray(state, int)[order]
    alarm = np.nan_to_num(np.asarray(p_critical, float)[order], nan=-1.0) >= threshold
    labelled = state >= 0
    critical = state == CRITICAL
    n_alarm, n_critical = int((alarm & labelled).sum()), int(critical.sum())
    hits = int((alarm & critical).sum())
    out = {"critical_threshold": float(threshold),
           "critical_precision": hits / n_alarm if n_alarm else None,
           "critical_recall": hits / n_critical if n_critical else None}

    # alarm episodes with no CRITICAL label in them are false alarms
    a_starts = episode_starts(alarm, line, ts)
    a_ids = _episode_ids(alarm, a_starts)
    n_episodes = int(a_starts.sum())
    true_episode = np.zeros(n_episodes, bool)
    true_episode[a_ids[alarm & critical]] = True
    shifts = labelled.sum() / SHIFT_MIN
    out["false_alarms_per_shift"] = float((~true_episode).sum() / shifts) if shifts else None

    # each CRITICAL episode: its event starts `horizon` minutes after its first labelled
    # minute; the first alarm of the alarm episode that reaches into it gives the lead time
    c_starts = episode_starts(critical, line, ts)
    c_ids = _episode_ids(critical, c_starts)
    n_crit_episodes = int(c_starts.sum())
    if not n_crit_episodes:
        out |= {"lead_time_median_min": None, "caught_5min_share": None,
                "critical_episodes": 0}
        return out
    a_first = ts[a_starts]  # first minute of each alarm episode
    caught_rows = alarm & critical
    # per CRITICAL episode, the earliest alarm episode overlapping it (its first minute)
    first_alarm = np.full(n_crit_episodes, np.iinfo(np.int64).max)
    np.minimum.at(first_alarm, c_ids[caught_rows], a_first[a_ids[caught_rows]])
    caught = first_alarm != np.iinfo(np.int64).max
    event = ts[c_starts] + horizon
    lead = (event - first_alarm)[caught]
    out |= {"lead_time_median_min": float(np.median(lead)) if len(lead) else None,
            "caught_5min_share": float((lead >= EARLY_MIN).sum() / n_crit_episodes),
            "critical_episodes": n_crit_episodes}
    return out
