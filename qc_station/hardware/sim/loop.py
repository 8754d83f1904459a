"""The whole conveyor loop in simulation, and the checks that it did the right thing.

Belt (physics) + the real firmware (``firmware/*.py``) on a pseudo-terminal + the station's
real driver (:class:`~qc_station.hardware.link.ConveyorLink`) + a station loop that
"photographs" the mask the trigger points at and answers with a verdict after a latency.
Verdicts come from the real inspection pipeline on simulator frames when it is installed
(``verdicts="pipeline"``), else from the masks' simulator truth (``"random"``: the belt's
masks are defective at random). Some verdicts are held back on purpose until the mask has
passed the reject point (late: must be rejected fail-safe).

The oracle is independent of the controller: the belt records what physically happened to
every mask, and a sniffer on the wire records when each verdict reached the firmware.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from qc_station.hardware.events import TriggerEvent
from qc_station.hardware.link import ConveyorLink
from qc_station.hardware.reports import ControllerCounts, FaultReport, LinkStats
from qc_station.hardware.sim.belt import REJECTED, BeltMask, make_masks
from qc_station.hardware.sim.host import ControllerHost, LineFaults

log = logging.getLogger(__name__)

AMBIGUOUS_MS = 30  # a verdict this close to the fire point may legitimately go either way
# Defects the geometric pipeline finds without the optional classifier.
DEFECT_CHOICES = ("width", "height", "pleats")


@dataclass
class MaskOutcome:
    """One physical mask: what the station said, when it arrived, what the flap did."""

    index: int
    defective: bool
    triggers: int = 0  # trigger events the station got for it (must be 1)
    seq: int | None = None
    passed: bool | None = None  # the verdict sent (None: none sent)
    held_late: bool = False  # the harness held the verdict until after the reject point
    delivered_ms: int | None = None  # sim ms the verdict reached the firmware
    fire_point_ms: int | None = None  # sim ms the mask reached the reject point
    rejected: bool = False

    @property
    def timing(self) -> str:
        """``on_time``, ``late`` (or never arrived) or ``ambiguous`` (within AMBIGUOUS_MS)."""
        if self.fire_point_ms is None:
            return "ambiguous"
        if self.delivered_ms is None or self.delivered_ms > self.fire_point_ms + AMBIGUOUS_MS:
            return "late"
        if self.delivered_ms < self.fire_point_ms - AMBIGUOUS_MS:
            return "on_time"
        return "ambiguous"

    @property
    def should_reject(self) -> bool | None:
        """True / False, or None when either outcome is correct (ambiguous PASS)."""
        if self.passed is False or self.timing == "late":
            return True
        if self.timing == "on_time":
            return False
        return None


@dataclass
class LoopReport:
    """What a loop run did; :meth:`problems` lists every violated rule."""

    masks: list[MaskOutcome]
    counts: ControllerCounts | None
    link: LinkStats
    injected: dict[str, int]
    misfires: int
    verdicts: str  # "random" or "pipeline"
    sim_s: float
    wall_s: float
    time_scale: float
    pipeline_agreement: float | None = None  # pipeline verdict == simulator truth, fraction
    faults_seen: list[str] = field(default_factory=list)
    firmware_error: str | None = None
    render_s: float = 0.0  # rendering the pipeline's frames before the run

    def tally(self) -> dict[str, int]:
        m = self.masks
        return {
            "masks": len(m),
            "triggered": sum(x.triggers == 1 for x in m),
            "verdict_pass": sum(x.passed is True for x in m),
            "verdict_fail": sum(x.passed is False for x in m),
            "late_or_missing": sum(x.timing == "late" for x in m),
            "rejected": sum(x.rejected for x in m),
            "passed_out": sum(not x.rejected for x in m),
            "failed_rejected": sum(x.passed is False and x.rejected for x in m),
            "passed_rejected": sum(x.passed is True and x.timing == "on_time" and x.rejected for x in m),
            "late_rejected": sum(x.timing == "late" and x.rejected for x in m),
        }

    def problems(self) -> list[str]:
        out = []
        for x in self.masks:
            if x.triggers > 1:
                out.append(f"mask {x.index}: {x.triggers} trigger events (inspected twice)")
            # 0 triggers (the TRIG was given up during a long unplug): no verdict, so the rule
            # below demands a fail-safe reject.
            want = x.should_reject
            if want is not None and want != x.rejected:
                out.append(
                    f"mask {x.index}: verdict={_word(x.passed)} "
                    f"timing={x.timing} rejected={x.rejected} (want {want})"
                )
        if self.firmware_error:
            out.append(f"the firmware crashed: {self.firmware_error}")
        if self.misfires:
            out.append(f"{self.misfires} reject(s) fired with no mask under the flap")
        c = self.counts
        if c is None:
            out.append("controller did not answer COUNTS")
        else:
            t = self.tally()
            if c.triggers != len(self.masks):
                out.append(f"controller counted {c.triggers} triggers for {len(self.masks)} masks")
            if c.rejected_fail + c.rejected_noverdict != t["rejected"]:
                out.append(
                    f"controller reported {c.rejected_fail + c.rejected_noverdict} rejects, "
                    f"belt saw {t['rejected']}"
                )
            late = sum(x.timing == "late" for x in self.masks)
            amb = sum(x.timing == "ambiguous" for x in self.masks)
            if not late <= c.rejected_noverdict <= late + amb:
                out.append(
                    f"controller counted {c.rejected_noverdict} fail-safe rejects, {late} verdicts were late"
                )
        return out

    def summary(self) -> str:
        t = self.tally()
        c = self.counts
        lines = [
            f"conveyor loop: {t['masks']} masks, verdicts from {self.verdicts}, "
            f"{self.sim_s:.1f} s simulated in {self.wall_s:.1f} s "
            f"(x{self.sim_s / max(self.wall_s, 1e-9):.1f})",
            f"  station verdicts: {t['verdict_pass']} PASS, {t['verdict_fail']} FAIL; "
            f"late or missing at the reject point: {t['late_or_missing']}",
            f"  flap: {t['rejected']} rejected ({t['failed_rejected']} FAIL, {t['late_rejected']} late), "
            f"{t['passed_out']} passed out, PASS rejected: {t['passed_rejected']}, misfires: {self.misfires}",
        ]
        if c is not None:
            lines.append(
                f"  controller: triggers={c.triggers} passed={c.passed} rejected_fail={c.rejected_fail} "
                f"rejected_noverdict={c.rejected_noverdict} late_verdicts={c.late_verdicts} "
                f"dup_verdicts={c.dup_verdicts} eye_glitches={c.eye_glitches} "
                f"watchdog_trips={c.watchdog_trips}"
            )
            lines.append(
                f"  controller link: bad_lines={c.bad_lines} dup_lines={c.dup_lines} "
                f"retransmits={c.retransmits} dropped={c.dropped}"
            )
        s = self.link
        lines.append(
            f"  station link: bad_lines={s.bad_lines} dup_lines={s.dup_lines} retransmits={s.retransmits} "
            f"dropped={s.dropped} reconnects={s.reconnects}"
        )
        lines.append("  injected on the wire: " + ", ".join(f"{k}={v}" for k, v in self.injected.items()))
        if self.render_s:
            lines.append(f"  ({self.render_s:.1f} s rendering the frames before the run)")
        if self.pipeline_agreement is not None:
            lines.append(
                f"  pipeline verdict agrees with simulator truth on {self.pipeline_agreement:.0%} of masks"
            )
        problems = self.problems()
        lines.append("  OK: every rule held" if not problems else f"  {len(problems)} PROBLEM(S):")
        lines += [f"    - {p}" for p in problems]
        return "\n".join(lines)


def _word(passed: bool | None) -> str:
    return "PASS" if passed else "FAIL" if passed is False else "none"


class PipelineVerdicter:
    """The real inspection pipeline on simulator frames.

    Frames are rendered before the belt starts (:meth:`prepare`; the scene exists before the
    camera looks at it, and rendering a 2304x1296 frame takes seconds here); inspecting one is
    what happens after each trigger, with its real latency.
    """

    def __init__(self, inspector: object, render_case: Callable[..., tuple[object, object]]) -> None:
        self._inspector = inspector
        self._render = render_case
        self._frames: dict[tuple[int, tuple[str, ...]], object] = {}

    def prepare(self, masks: list[BeltMask]) -> float:
        """Render every distinct case on the belt; returns the seconds it took."""
        t0 = time.monotonic()
        for m in masks:
            if m.case not in self._frames:
                seed, defects = m.case
                self._frames[m.case] = self._render(seed, defects=defects)[0]
        return time.monotonic() - t0

    def __call__(self, mask: BeltMask) -> bool:
        result = self._inspector.inspect(self._frames[mask.case])  # type: ignore[attr-defined]
        return str(getattr(result.verdict, "value", result.verdict)) == "pass"


def pipeline_verdicter() -> PipelineVerdicter | None:
    """The real inspection pipeline, or None when it is not available (not installed, or its
    bundled simulator calibration is missing)."""
    try:
        from qc_station.calibration import bundled_sim_calibration
        from qc_station.errors import QCError
        from qc_station.sim import render_case
        from qc_station.spec import load_spec
        from qc_station.vision.pipeline import Inspector
    except ImportError as exc:
        log.info("inspection pipeline not available (%s): random verdicts", exc)
        return None
    try:
        inspector = Inspector(bundled_sim_calibration(), load_spec())
    except (QCError, OSError) as exc:
        log.info("inspection pipeline not usable (%s): random verdicts", exc)
        return None
    return PipelineVerdicter(inspector, render_case)


def run_loop(
    n_masks: int = 30,
    *,
    seed: int = 0,
    time_scale: float = 5.0,
    p_defective: float = 0.3,
    p_late: float = 0.1,
    latency_ms: tuple[float, float] = (20.0, 150.0),
    faults: LineFaults | None = None,
    verdicts: str = "auto",
    speed_pct: int = 75,
    timeout_s: float = 60.0,
    step_ms: int = 1,
    distinct_frames: int = 4,
    unplug_at_s: float | None = None,
    unplug_for_s: float = 0.5,
) -> LoopReport:
    """Run ``n_masks`` masks through the simulated conveyor; see the module docstring.

    ``verdicts``: ``"random"``, ``"pipeline"`` or ``"auto"`` (pipeline when installed). With the
    pipeline, masks show one of ``distinct_frames`` good and as many defective rendered cases
    (rendered before the run), plus a random extra latency from ``latency_ms``.
    ``unplug_at_s``: pull the USB cable at this simulated second for ``unplug_for_s`` real
    seconds (longer than the watchdog, 0.8 s real, stops the belt until the station is back).
    Latencies are wall-clock milliseconds (the station runs in real time); the belt runs at
    ``speed_pct`` of 400 mm/s (75 % = 300 mm/s = one mask per second at 300 mm pitch).
    """
    rng = random.Random(seed)
    inspect = pipeline_verdicter() if verdicts in ("auto", "pipeline") else None
    if verdicts == "pipeline" and inspect is None:
        raise RuntimeError("the inspection pipeline (qc_station.vision.pipeline) is not installed")
    source = "pipeline" if inspect else "random"
    masks = make_masks(n_masks, p_defective=p_defective, seed=seed)
    k = max(1, distinct_frames)
    defects = [rng.choice(DEFECT_CHOICES) for _ in range(k)]
    for m in masks:
        j = m.index % k
        m.case = (seed * 1000 + 500 + j, (defects[j],)) if m.defective else (seed * 1000 + j, ())
    render_s = inspect.prepare(masks) if inspect is not None else 0.0
    late = {m.index for m in masks if rng.random() < p_late}
    outcomes = {m.index: MaskOutcome(m.index, m.defective, held_late=m.index in late) for m in masks}
    faults = faults if faults is not None else LineFaults()
    host = ControllerHost(
        masks,
        time_scale=time_scale,
        faults=faults,
        seed=seed,
        step_ms=step_ms,
        config_overrides={"watchdog_ms": int(800 * time_scale), "retry_ms": int(100 * time_scale)},
    )
    jobs: queue.Queue[tuple[TriggerEvent, BeltMask] | None] = queue.Queue()
    faults_seen: list[str] = []
    stop = threading.Event()
    link_box: list[ConveyorLink] = []
    agree: list[bool] = []

    def on_trigger(event: TriggerEvent) -> None:
        with host.lock:  # the camera, triggered by the controller, sees this mask
            mask = host.belt.mask_at_eye(event.belt_position or 0)
        if mask is None:
            log.error("trigger %d at %s: no mask under the camera", event.seq, event.belt_position)
            return
        out = outcomes[mask.index]
        out.triggers += 1
        out.seq = event.seq
        jobs.put((event, mask))

    def answer(event: TriggerEvent, mask: BeltMask, passed: bool) -> None:
        if mask.index in late:  # hold it until the mask is past the reject point
            while mask.fire_point_ms is None and not stop.is_set():
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.2))
        outcomes[mask.index].passed = passed
        link_box[0].send_verdict(event.seq, passed)

    def worker() -> None:
        while (job := jobs.get()) is not None:
            event, mask = job
            if stop.is_set():
                continue  # the run is over
            if inspect is not None:
                passed = inspect(mask)  # real latency of the inspection
                agree.append(passed == (not mask.defective))
                time.sleep(rng.uniform(*latency_ms) / 1000)
                threading.Thread(target=answer, args=(event, mask, passed), daemon=True).start()
            else:
                delay = rng.uniform(*latency_ms) / 1000
                timer = threading.Timer(delay, answer, args=(event, mask, not mask.defective))
                timer.daemon = True
                timer.start()

    def on_fault(report: FaultReport) -> None:
        faults_seen.append(f"{report.code}={'on' if report.active else 'off'}")
        if report.code == "WATCHDOG" and not report.active and link_box:
            link_box[0].belt_run(speed_pct)  # the station is back: restart the belt

    t0 = time.monotonic()
    worker_thread = threading.Thread(target=worker, name="station-inspect", daemon=True)
    worker_thread.start()
    with host:
        link = ConveyorLink(
            host.port_path, heartbeat_ms=100, retry_ms=100, on_trigger=on_trigger, on_fault=on_fault
        )
        link_box.append(link)
        with link:
            if not link.wait_connected(10.0):
                raise RuntimeError("the simulated controller did not answer HELLO")
            link.belt_run(speed_pct)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                with host.lock:
                    if host.belt.done():
                        break
                if unplug_at_s is not None and host.sim_ms >= unplug_at_s * 1000:
                    unplug_at_s = None
                    host.unplug()
                    time.sleep(unplug_for_s)
                    host.replug()
                time.sleep(0.02)
            stop.set()
            time.sleep(0.3)  # let the last late verdicts and reports land
            counts = None
            for _ in range(5):
                counts = link.request_counts(timeout_s=1.0)
                if counts is not None:
                    break
            link.belt_stop()
        jobs.put(None)
    worker_thread.join(timeout=30.0)  # never leave an inspection running in C code at exit
    with host.lock:
        for m in host.belt.masks:
            out = outcomes[m.index]
            out.rejected = m.outcome == REJECTED
            out.fire_point_ms = m.fire_point_ms
            if out.seq is not None:
                out.delivered_ms = host.verdict_delivered_ms.get(out.seq)
        sim_s = host.sim_ms / 1000
        misfires = host.belt.record.misfires
    return LoopReport(
        masks=[outcomes[i] for i in sorted(outcomes)],
        counts=counts,
        link=link.stats,
        injected=dict(faults.injected),
        misfires=misfires,
        verdicts=source,
        sim_s=sim_s,
        wall_s=time.monotonic() - t0,
        time_scale=time_scale,
        pipeline_agreement=(sum(agree) / len(agree)) if agree else None,
        faults_seen=faults_seen,
        firmware_error=repr(host.error) if host.error else None,
        render_s=render_s,
    )
