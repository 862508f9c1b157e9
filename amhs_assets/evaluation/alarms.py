"""CRITICAL alarms as operators live them, measured: precision and recall at the operating
point, false alarm episodes per line and 12-hour shift, and the lead time of each CRITICAL
episode. Numpy only; the operating points themselves are chosen in models/operating.py.

A row is one line and minute; its label at horizon h says whether the coming h minutes hold a
CRITICAL minute. An *alarm* is P(CRITICAL) >= threshold. Consecutive alarm minutes of a line
form one alarm episode (what an operator sees as one page); a run of alarm minutes with no
CRITICAL label is a false alarm episode (unless it is at most h minutes long and runs straight
into a CRITICAL label: an early alarm); consecutive CRITICAL labels of a line form one
CRITICAL episode, whose event starts h minutes after its first labelled minute
(the first minute whose window reaches it).
"""

from __future__ import annotations

import numpy as np

from amhs_assets.models.operating import (
    CRITICAL,
    SHIFT_MIN,
    episode_ids,
    episode_starts,
    false_alarm_episodes,
    sort_rows,
)

EARLY_MIN = 5  # an episode "caught early" has an alarm at least this many minutes ahead


def alarm_metrics(p_critical: np.ndarray, state: np.ndarray, line_id: np.ndarray,
                  timestamp: np.ndarray, horizon: int, threshold: float) -> dict:
    """Precision and recall of CRITICAL minutes at the threshold, false alarm episodes per line
    per 12-hour shift, and the lead time of the CRITICAL episodes (None where undefined)."""
    order, line, ts = sort_rows(line_id, timestamp)
    state = np.asarray(state, int)[order]
    alarm = np.nan_to_num(np.asarray(p_critical, float)[order], nan=-1.0) >= threshold
    labelled = state >= 0
    critical = state == CRITICAL
    n_alarm, n_critical = int((alarm & labelled).sum()), int(critical.sum())
    hits = int((alarm & critical).sum())
    out = {"critical_threshold": float(threshold),
           "critical_precision": hits / n_alarm if n_alarm else None,
           "critical_recall": hits / n_critical if n_critical else None}

    # runs of alarm minutes with no CRITICAL label are false alarms (early ones forgiven)
    shifts = labelled.sum() / SHIFT_MIN
    false = false_alarm_episodes(alarm & labelled, critical, line, ts, horizon)
    out["false_alarms_per_shift"] = float(false / shifts) if shifts else None
    a_starts = episode_starts(alarm, line, ts)
    a_ids = episode_ids(alarm, a_starts)

    # each CRITICAL episode: its event starts `horizon` minutes after its first labelled
    # minute; the first alarm of the alarm episode that reaches into it gives the lead time
    c_starts = episode_starts(critical, line, ts)
    c_ids = episode_ids(critical, c_starts)
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
