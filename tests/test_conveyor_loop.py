"""The full conveyor loop: simulated belt (one mask per second) + the real firmware on a pty +
the real station driver, with a noisy wire. Every FAIL is rejected, no on-time PASS is,
late verdicts are rejected fail-safe, and the controller's counts match what the belt saw."""

from __future__ import annotations

import pytest

from qc_station.hardware.sim.host import LineFaults
from qc_station.hardware.sim.loop import pipeline_verdicter, run_loop


def test_full_loop_random_verdicts_on_a_noisy_wire_with_the_cable_pulled() -> None:
    faults = LineFaults(p_drop=0.03, p_dup=0.05, p_corrupt=0.03, p_garbage=0.05)
    report = run_loop(
        30,
        seed=7,
        time_scale=5.0,
        p_defective=0.3,
        p_late=0.15,
        faults=faults,
        verdicts="random",
        unplug_at_s=15.0,
        unplug_for_s=1.0,  # longer than the watchdog (0.8 s): the belt stops until the station is back
    )
    print()
    print(report.summary())
    assert report.problems() == []
    t = report.tally()
    # The run exercised what it claims to (otherwise it could not fail).
    assert t["masks"] == 30 and t["triggered"] >= 28
    assert t["verdict_fail"] >= 3 and t["late_or_missing"] >= 2 and t["passed_out"] >= 5
    assert t["passed_rejected"] == 0
    assert t["rejected"] == sum(1 for m in report.masks if m.passed is False or m.timing == "late")
    assert sum(faults.injected.values()) >= 10
    c = report.counts
    assert c is not None
    assert c.bad_lines >= 1 and report.link.bad_lines >= 1  # garbage reached both ends and was NAKed
    assert c.rejected_noverdict >= 2 and c.late_verdicts >= 1
    assert report.misfires == 0
    # The cable was out longer than the watchdog: belt stopped, then restarted by the station.
    assert c.watchdog_trips == 1 and report.link.reconnects == 1
    assert report.faults_seen.count("WATCHDOG=off") == 1
    # The simulated clock ran faster than real time.
    assert report.sim_s / report.wall_s > 2.0


@pytest.mark.slow
def test_full_loop_with_the_real_inspection_pipeline() -> None:
    if pipeline_verdicter() is None:
        pytest.skip("qc_station.vision.pipeline is not installed yet")
    # Rendering a frame takes ~4 s and inspecting one ~1 s on this shared machine: 3 masks, two
    # distinct rendered cases (seed 3: good, defective, good), the belt in real time (one mask per second).
    report = run_loop(
        3, seed=3, time_scale=1.0, p_defective=0.5, p_late=0.0, verdicts="pipeline", distinct_frames=1
    )
    print()
    print(report.summary())
    assert report.verdicts == "pipeline"
    assert report.problems() == []
    assert all(m.passed is not None for m in report.masks)  # the pipeline answered every mask


def test_cli_conveyor_sim_prints_the_counts(capsys: pytest.CaptureFixture[str]) -> None:
    from qc_station.cli import main

    rc = main(["conveyor", "sim", "--masks", "4", "--time-scale", "8", "--late", "0", "--seed", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "conveyor loop: 4 masks" in out and "controller: triggers=4" in out
    assert "OK: every rule held" in out


def test_cli_conveyor_help_mentions_the_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    from qc_station.cli import main

    with pytest.raises(SystemExit):
        main(["conveyor", "sim", "--help"])
    assert "--noise" in capsys.readouterr().out
