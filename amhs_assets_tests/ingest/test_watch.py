"""The raw-folder watcher: new files launch one run, growing files wait, touched files don't."""

from __future__ import annotations

import json
import os

from amhs_assets.ingest.watch import WatchState, decide


def tick(raw_dir, state, baseline=""):
    decision = decide(raw_dir, WatchState.loads(state.dumps()), baseline)  # through the cursor
    return decision, decision.state


def test_a_new_file_launches_one_run_once_it_holds_still(tmp_path):
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    first, state = tick(tmp_path, WatchState())
    assert first.action == "wait"  # never seen before: could still be growing
    second, state = tick(tmp_path, state)
    assert second.action == "launch" and second.changed == ["a.csv"] and second.run_key
    third, state = tick(tmp_path, state)
    assert third.action == "none"


def test_a_file_still_being_written_waits_for_the_next_tick(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("x,y\n1,2\n")
    _, state = tick(tmp_path, WatchState())
    with path.open("a") as handle:
        handle.write("3,4\n")  # grew since the last tick
    decision, state = tick(tmp_path, state)
    assert decision.action == "wait"
    decision, _ = tick(tmp_path, state)
    assert decision.action == "launch"


def test_a_burst_of_files_becomes_one_run(tmp_path):
    _, state = tick(tmp_path, WatchState())
    for i in range(5):
        (tmp_path / f"day{i}.csv").write_text(f"x\n{i}\n")
    _, state = tick(tmp_path, state)
    decision, state = tick(tmp_path, state)
    assert decision.action == "launch" and len(decision.changed) == 5
    assert tick(tmp_path, state)[0].action == "none"


def test_touching_a_file_without_changing_it_launches_nothing(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("x\n1\n")
    _, state = tick(tmp_path, WatchState())
    launch, state = tick(tmp_path, state)
    assert launch.action == "launch"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    _, state = tick(tmp_path, state)
    decision, _ = tick(tmp_path, state)
    assert decision.action == "none" and "unchanged" in decision.reason


def test_same_data_gives_the_same_run_key_and_changed_data_a_new_one(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    _, state = tick(tmp_path, WatchState())
    first, state = tick(tmp_path, state)
    (tmp_path / "a.csv").write_text("x\n2\n")
    _, state = tick(tmp_path, state)
    second, _ = tick(tmp_path, state)
    assert second.action == "launch" and second.run_key != first.run_key
    again = decide(tmp_path, WatchState(), "")
    assert again.action == "wait"


def test_data_already_materialized_does_not_launch_after_a_restart(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    _, state = tick(tmp_path, WatchState())
    launch, _ = tick(tmp_path, state)
    baseline = launch.state.fingerprint
    _, fresh = tick(tmp_path, WatchState(), baseline)  # a new cursor, the same data
    decision, _ = tick(tmp_path, fresh, baseline)
    assert decision.action == "none"


def test_a_removed_file_is_a_change(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "b.csv").write_text("x\n2\n")
    _, state = tick(tmp_path, WatchState())
    _, state = tick(tmp_path, state)
    (tmp_path / "b.csv").unlink()
    decision, _ = tick(tmp_path, state)
    assert decision.action == "launch" and "b.csv" in decision.changed


def test_the_cursor_is_compact_and_the_detail_file_carries_the_rest(tmp_path):
    from amhs_assets.ingest.watch import load_state

    raw, detail = tmp_path / "raw", tmp_path / "warehouse" / "_raw_watch.json"
    raw.mkdir()
    for i in range(300):
        (raw / f"day{i:03d}.csv").write_text(f"x\n{i}\n")
    _, state = tick(raw, WatchState())
    decision, state = tick(raw, state)
    assert decision.action == "launch"
    state.save_detail(detail)
    cursor = json.loads(state.cursor())
    assert cursor == {"files": 300, "fingerprint": state.fingerprint, "detail": state.digest()}
    assert len(state.cursor()) < 200 < len(state.dumps()) / 100  # the UI shows a line, not a blob
    loaded = load_state(state.cursor(), detail)
    assert loaded.dumps() == state.dumps()
    assert decide(raw, loaded).action == "none"
    # an old cursor (the whole state inline) still reads as it is
    assert load_state(state.dumps(), tmp_path / "nowhere").dumps() == state.dumps()
    # a detail file of another tick, or none: only the fingerprint; the folder is hashed again
    # and unchanged content launches nothing
    (raw / "day000.csv").write_text("x\nchanged\n")
    other = decide(raw, decide(raw, loaded).state).state
    other.save_detail(detail)
    for lost in (True, False):
        if lost:
            detail.unlink()
        else:
            other.save_detail(detail)
        partial = load_state(state.cursor(), detail)
        assert partial.launched == {} and partial.fingerprint == state.fingerprint
    (raw / "day000.csv").write_text("x\n0\n")  # back to what the cursor's fingerprint covers
    first = decide(raw, partial)
    assert first.action == "wait"  # every file looks new: one tick to hold still
    assert decide(raw, first.state).action == "none"
