"""The cost of following CRITICAL episodes on the API's tracker thread: the SQLite file every
worker shares (SharedEpisodes) against the per-process memory it replaced (CriticalEpisodes),
per answer of `--lines` lines, with an alarm every 7th minute (episodes open and clear).

Goal: far more answers a second than a fab sends (30 lines, one answer a minute each); the
file costs one write transaction per answer, off the request thread.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from amhs_assets.notify.episodes import CriticalEpisodes, SharedEpisodes

MODEL = {"name": "amhs-predictor", "version": "1", "alias": "champion"}


def answer(lines: int, minute: int) -> list[dict]:
    """One answer of every line for one minute, as the API gives it."""
    alarm = minute % 7 == 0
    as_of = f"2026-03-{1 + minute // 1440:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:00Z"
    horizons = {h: {"state": "CRITICAL" if alarm else "NORMAL", "alarm": alarm,
                    "threshold": 0.05, "proba": {"CRITICAL": 0.6 if alarm else 0.01}}
                for h in ("10", "15", "25")}
    return [{"line_id": f"L{i}", "as_of": as_of, "horizons": horizons} for i in range(lines)]


def per_answer_ms(tracker, answers: list[list[dict]]) -> float:
    started = time.perf_counter()
    for one in answers:
        tracker.observe(MODEL, one)
    return 1e3 * (time.perf_counter() - started) / len(answers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=30)
    parser.add_argument("--answers", type=int, default=3000)
    args = parser.parse_args()
    answers = [answer(args.lines, minute) for minute in range(args.answers)]
    with tempfile.TemporaryDirectory() as folder:
        shared = SharedEpisodes(Path(folder) / "critical_episodes.sqlite", clear_after=3)
        file_ms = per_answer_ms(shared, answers)
        shared.close()
    memory_ms = per_answer_ms(CriticalEpisodes(clear_after=3), answers)
    print(f"{args.lines}-line answers, {args.answers} of them: shared file {file_ms:.3f} ms "
          f"each ({1e3 / file_ms:,.0f} answers/s), memory {memory_ms:.3f} ms "
          f"({1e3 / memory_ms:,.0f} answers/s); ratio file/memory {file_ms / memory_ms:.1f}")


if __name__ == "__main__":
    main()
