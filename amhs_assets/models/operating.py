"""Operating points: how a model's class probabilities become the alarms operators see.

Per horizon, a ``HorizonPolicy`` holds a probability calibration (isotonic or Platt, fitted on
the validation rows when it lowers their Brier score) and decision thresholds on P(CRITICAL)
and P(WARNING), chosen on the validation rows for a precision target or a budget of false
alarm episodes per line per 12-hour shift. The policy is part of the model: stored with it,
applied by its ``predict`` (so the pyfunc, the API, evaluation and monitoring all see the same
states), and written as JSON (no pickles). Numpy and scikit-learn only.

The state follows the operating points: CRITICAL when P(CRITICAL) reaches its threshold, else
WARNING when P(WARNING) reaches its threshold, else NORMAL. A row's label at horizon h says
whether the coming h minutes hold a CRITICAL (WARNING) minute; an *alarm* is P(CRITICAL) at or
above the threshold, consecutive alarm minutes of a line form one alarm episode, and
consecutive alarm minutes none of which is labelled CRITICAL form one false alarm episode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from amhs_assets.config import setting
from amhs_assets.contract import STATES

CRITICAL = STATES.index("CRITICAL")
WARNING = STATES.index("WARNING")
NORMAL = STATES.index("NORMAL")
SHIFT_MIN = 12 * 60
TARGETS = ("precision", "false_alarm_budget")
CALIBRATIONS = ("auto", "isotonic", "platt", "none")
GRID = 256  # candidate thresholds tried for a false alarm budget (quantiles of P)
EPS = 1e-6


@dataclass(frozen=True)
class AlarmConfig:
    """How the operating points are chosen on the validation rows, and the served probabilities."""

    target: str = setting(
        "precision", "what the thresholds are chosen for: precision (the most recall whose "
                     "validation precision reaches min_precision) or false_alarm_budget (the "
                     "most recall with at most false_alarms_per_shift false alarm episodes)")
    min_precision: float = setting(
        0.5, "target=precision: the lowest threshold whose validation precision reaches this")
    false_alarms_per_shift: float = setting(
        1.0, "target=false_alarm_budget: false alarm episodes allowed per line per 12-hour shift")
    default_threshold: float = setting(
        0.5, "threshold when the validation rows hold no minute of the class")
    calibration: str = setting(
        "auto", "class probabilities calibrated per horizon on the validation rows: auto "
                "(isotonic or Platt, whichever lowers the validation Brier score, none if "
                "neither does), isotonic, platt or none")
    refit: bool = setting(
        True, "refit the regressors on training + validation rows with the number of rounds "
              "early stopping chose")
    refit_weight: float = setting(
        0.5, "the refitted regressors' share of the served forecast; the early-stopped ones "
             "take the rest (1 serves the refit alone; docs/alarms.md says why 0.5)")

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"alarms.target={self.target!r}: expected one of {', '.join(TARGETS)}")
        if not 0.0 <= self.refit_weight <= 1.0:
            raise ValueError(f"alarms.refit_weight={self.refit_weight}: expected 0 to 1")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"alarms.calibration={self.calibration!r}: expected one of "
                             f"{', '.join(CALIBRATIONS)}")


# --- episodes and scores ----------------------------------------------------------------------
def episode_starts(flags: np.ndarray, line_id: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """Where an episode of consecutive flagged minutes of one line starts (rows sorted by line
    and time; `minutes` counts whole minutes)."""
    flags = np.asarray(flags, bool)
    same = np.r_[False, (line_id[1:] == line_id[:-1]) & (np.diff(minutes) == 1)]
    previous = np.r_[False, flags[:-1]]
    return flags & ~(previous & same)


def episode_ids(flags: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Episode number of each flagged row (-1 elsewhere)."""
    return np.where(flags, np.cumsum(starts) - 1, -1)


def sort_rows(line_id: np.ndarray, timestamp: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """Order by line and time, with the sorted lines and whole minutes since the epoch."""
    minutes = pd.DatetimeIndex(pd.to_datetime(np.asarray(timestamp), utc=True)).asi8 // 60_000_000_000
    line = np.asarray(line_id)
    order = np.lexsort((minutes, line))
    return order, line[order], minutes[order]


def false_alarm_episodes(alarm: np.ndarray, positive: np.ndarray, line: np.ndarray,
                         minutes: np.ndarray, lead_allowance: int = 0) -> int:
    """False alarm episodes (rows sorted by line and time): runs of consecutive alarm minutes
    of a line none of which is labelled positive, except a run of at most `lead_allowance`
    minutes that runs straight into a positive one (an early alarm of that episode). An alarm
    that outlasts its CRITICAL window counts once more, and one that never stops counts once
    per gap between windows: alarming all the time is not one cheap episode."""
    false = np.asarray(alarm, bool) & ~np.asarray(positive, bool)
    starts = episode_starts(false, line, minutes)
    if not lead_allowance:
        return int(starts.sum())
    ids = episode_ids(false, starts)
    length = np.bincount(ids[false], minlength=int(starts.sum()))
    same_next = np.r_[(line[1:] == line[:-1]) & (np.diff(minutes) == 1), False]
    ends = false & ~(np.r_[false[1:], False] & same_next)
    lead_in = ends & np.r_[positive[1:], False] & same_next
    forgiven = length[ids[lead_in]] <= lead_allowance
    return int(starts.sum() - forgiven.sum())


def brier_score(proba: np.ndarray, state: np.ndarray) -> float | None:
    """Mean over labelled rows of the squared distance between the class probabilities and the
    one-hot actual state (0 is perfect, 2 is worst); None without labelled rows."""
    state = np.asarray(state, int)
    known = state >= 0
    if not known.any():
        return None
    onehot = np.eye(proba.shape[1])[state[known]]
    return float(np.mean(np.sum((proba[known] - onehot) ** 2, axis=1)))


# --- thresholds -------------------------------------------------------------------------------
def precision_threshold(p: np.ndarray, positive: np.ndarray, min_precision: float,
                        default: float) -> float:
    """The lowest threshold whose precision on these rows reaches min_precision (the most
    recall at that precision); the most precise threshold when none reaches it."""
    known = ~np.isnan(p)
    p, y = p[known], positive[known]
    if not y.any():
        return float(default)
    order = np.argsort(-p, kind="stable")
    p_sorted, hits = p[order], np.cumsum(y[order])
    last = np.r_[p_sorted[1:] != p_sorted[:-1], True]  # cut after each distinct probability
    cut_p, cut_hits = p_sorted[last], hits[last]
    precision = cut_hits / (np.flatnonzero(last) + 1)
    good = np.flatnonzero(precision >= min_precision)
    if len(good):
        return float(cut_p[good[-1]])
    return float(cut_p[int(np.argmax(precision))])


def budget_threshold(p: np.ndarray, positive: np.ndarray, line: np.ndarray, minutes: np.ndarray,
                     budget_per_shift: float, default: float, horizon: int = 0) -> float:
    """The lowest threshold (of GRID quantiles of p) with at most budget_per_shift false alarm
    episodes per line per shift on these rows (sorted by line and time; an alarm up to
    `horizon` minutes before a positive label is early, not false)."""
    if not positive.any():
        return float(default)
    p = np.nan_to_num(p, nan=-1.0)
    shifts = len(p) / SHIFT_MIN
    candidates = np.unique(np.quantile(p[p >= 0], np.linspace(0, 1, GRID)))
    for t in candidates:  # ascending: the first within budget gives the most recall
        if false_alarm_episodes(p >= t, positive, line, minutes, horizon) \
                <= budget_per_shift * shifts:
            return float(t)
    return float(candidates[-1] + EPS)


def choose_threshold(p: np.ndarray, positive: np.ndarray, line: np.ndarray, minutes: np.ndarray,
                     config: AlarmConfig, horizon: int = 0) -> float:
    """The threshold the configured target chooses (rows sorted by line and time)."""
    p, positive = np.asarray(p, float), np.asarray(positive, bool)
    if config.target == "false_alarm_budget":
        return budget_threshold(p, positive, line, minutes, config.false_alarms_per_shift,
                                config.default_threshold, horizon)
    return precision_threshold(p, positive, config.min_precision, config.default_threshold)


# --- calibration ------------------------------------------------------------------------------
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass
class Calibration:
    """Per class, a monotone map of its probability: isotonic (knots, linear in between) or
    Platt (a sigmoid of the logit); rows renormalised to sum to one. 'none' leaves them."""

    method: str = "none"
    knots: list[tuple[list[float], list[float]]] = field(default_factory=list)  # isotonic
    platt: list[tuple[float, float]] = field(default_factory=list)  # (slope, intercept)

    def apply(self, proba: np.ndarray) -> np.ndarray:
        if self.method == "none":
            return proba
        out = np.empty_like(proba, dtype=np.float64)
        for k in range(proba.shape[1]):
            if self.method == "isotonic":
                x, y = self.knots[k]
                out[:, k] = np.interp(proba[:, k], x, y)
            else:
                a, b = self.platt[k]
                out[:, k] = 1.0 / (1.0 + np.exp(-(a * _logit(proba[:, k]) + b)))
        out = np.clip(out, EPS, None)
        return out / out.sum(axis=1, keepdims=True)

    @classmethod
    def fit(cls, method: str, proba: np.ndarray, state: np.ndarray) -> "Calibration":
        """Fit on labelled rows (state >= 0)."""
        known = state >= 0
        proba, state = proba[known], state[known]
        if method == "none" or len(state) == 0:
            return cls()
        knots, platt = [], []
        for k in range(proba.shape[1]):
            y = (state == k).astype(float)
            if method == "isotonic":
                iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                iso.fit(proba[:, k], y)
                knots.append((iso.X_thresholds_.tolist(), iso.y_thresholds_.tolist()))
            elif y.min() == y.max():  # one class only: Platt cannot fit; keep the identity
                platt.append((1.0, 0.0))
            else:
                lr = LogisticRegression(C=1e4).fit(_logit(proba[:, k])[:, None], y)
                platt.append((float(lr.coef_[0, 0]), float(lr.intercept_[0])))
        return cls(method, knots, platt)


def _time_halves(minutes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows before and after the median minute (two contiguous blocks of time)."""
    cut = np.median(minutes)
    return minutes < cut, minutes >= cut


def choose_calibration(config: AlarmConfig, proba: np.ndarray, state: np.ndarray,
                       minutes: np.ndarray) -> tuple[Calibration, dict]:
    """The calibration the setting names, or under 'auto' the method with the lowest Brier
    score out of sample (fitted on one half of the validation time, scored on the other, both
    ways); the chosen method is then fitted on all validation rows."""
    methods = ("none", "isotonic", "platt") if config.calibration == "auto" \
        else (config.calibration,)
    halves = _time_halves(minutes)
    scores = {}
    for method in methods:
        parts = []
        for fit_rows, score_rows in (halves, halves[::-1]):
            if not (state[fit_rows] >= 0).any() or not (state[score_rows] >= 0).any():
                continue
            cal = Calibration.fit(method, proba[fit_rows], state[fit_rows])
            parts.append(brier_score(cal.apply(proba[score_rows]), state[score_rows]))
        scores[method] = float(np.mean(parts)) if parts else None
    known = {m: s for m, s in scores.items() if s is not None}
    best = min(known, key=known.get) if known else "none"
    return Calibration.fit(best, proba, state), {"method": best, "brier_cv": scores}


# --- the policy -------------------------------------------------------------------------------
@dataclass
class HorizonPolicy:
    """One horizon's calibration and thresholds, and what they were chosen from."""

    horizon: int
    critical_threshold: float
    warning_threshold: float
    calibration: Calibration = field(default_factory=Calibration)
    target: str = "precision"
    target_value: float = 0.5
    val_brier_raw: float | None = None
    val_brier: float | None = None

    def decide(self, proba: np.ndarray) -> dict[str, np.ndarray]:
        """Calibrated probabilities, the state per the thresholds and the CRITICAL alarm."""
        proba = self.calibration.apply(proba)
        alarm = proba[:, CRITICAL] >= self.critical_threshold
        warn = proba[:, WARNING] >= self.warning_threshold
        state = np.where(alarm, CRITICAL, np.where(warn, WARNING, NORMAL))
        return {"proba": proba, "state": state, "alarm": alarm}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "HorizonPolicy":
        cal = data.get("calibration") or {}
        return cls(**{**data, "calibration": Calibration(
            cal.get("method", "none"), [tuple(k) for k in cal.get("knots", [])],
            [tuple(p) for p in cal.get("platt", [])])})

    def summary(self) -> dict:
        """The figures shown in reports and tags (no calibration knots)."""
        return {"critical_threshold": self.critical_threshold,
                "warning_threshold": self.warning_threshold,
                "calibration": self.calibration.method, "target": self.target,
                "target_value": self.target_value, "val_brier_raw": self.val_brier_raw,
                "val_brier": self.val_brier}


def fit_policy(h: int, proba: np.ndarray, state: np.ndarray, line_id: np.ndarray,
               timestamp: np.ndarray, config: AlarmConfig) -> HorizonPolicy:
    """Calibration and thresholds of one horizon from validation rows: the model's raw class
    probabilities and the actual state (-1 unknown)."""
    order, line, minutes = sort_rows(line_id, timestamp)
    proba, state = np.asarray(proba, float)[order], np.asarray(state, int)[order]
    calibration, _ = choose_calibration(config, proba, state, minutes)
    calibrated = calibration.apply(proba)
    labelled = state >= 0
    thresholds = {}
    for k in (CRITICAL, WARNING):
        p = np.where(labelled, calibrated[:, k], np.nan)
        thresholds[k] = choose_threshold(p, state == k, line, minutes, config, int(h))
    target_value = (config.false_alarms_per_shift if config.target == "false_alarm_budget"
                    else config.min_precision)
    return HorizonPolicy(int(h), thresholds[CRITICAL], thresholds[WARNING], calibration,
                         config.target, float(target_value), brier_score(proba, state),
                         brier_score(calibrated, state))


def decide(pred: dict[str, np.ndarray], policy: HorizonPolicy | None) -> dict[str, np.ndarray]:
    """A model's raw prediction with the policy applied (calibrated proba, state, alarm); with no
    policy, the most probable class and an alarm where it is CRITICAL."""
    if policy is None:
        state = pred["proba"].argmax(axis=1)
        return pred | {"state": state, "alarm": state == CRITICAL}
    return pred | policy.decide(pred["proba"])
