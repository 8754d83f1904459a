"""A store filled through its own API for the dashboard / certificate tests.

Three batches on two stations, three operators. The ear-loop reject is real: a simulator frame
inspected and annotated by the real pipeline (rendered once per test session); the other
rejects get quickly drawn look-alike images so the gallery and certificates have pictures. Batch LOT-B
ends with 10 masks narrower than nominal (still inside the spec): the drift the dashboard
must flag. LOT-A is in control.

:func:`served` starts the real app on loopback (``ServerThread``, as tests/test_api.py does) over
such a store, optionally with tokens required and one user per role.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from station_factories import measurements

from qc_station.results import InspectionResult, Provenance, Reason
from qc_station.store import Store

SPEC = "resilience-pleated"
STATION, OTHER_STATION = "st-1", "st-2"


@dataclass(frozen=True)
class Seeded:
    batch_a: int  # LOT-A, ana, st-1, closed, in control
    batch_b: int  # LOT-B, ben, st-1, open, drifting narrow at the end
    batch_c: int  # LOT-C, cy, st-2, closed
    drift_first_id: int  # first of the narrow run in LOT-B
    total: int
    reject_ids: list[int]


@functools.lru_cache(maxsize=1)
def real_frames() -> tuple[tuple[np.ndarray, np.ndarray, InspectionResult], ...]:
    """(frame, annotated overlay, pipeline result) for a simulated reject, via the real pipeline."""
    from qc_station import sim
    from qc_station.calibration import bundled_sim_calibration
    from qc_station.spec import load_spec
    from qc_station.vision.pipeline import Inspector

    inspector = Inspector(bundled_sim_calibration(), load_spec(SPEC))
    out = []
    for seed, defects in ((21, ("ear_loop",)),):  # one frame: rendering costs ~5 s
        frame, _truth = sim.render_case(seed, defects=defects)
        res = inspector.inspect(frame, image_name=f"sim-{seed}.png")
        out.append((frame, inspector.annotate(frame, res), res))
    return tuple(out)


def drawn_reject(codes: tuple[str, ...], verdict: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A drawn frame + overlay for a reject the simulator is not asked to render (keeps tests fast)."""
    import cv2

    from qc_station.results import PLAIN_WORDS

    rng = np.random.default_rng(seed)
    frame = np.full((540, 960, 3), 28, np.uint8)
    frame += rng.integers(0, 12, frame.shape, dtype=np.uint8)
    x0, y0 = 250 + int(rng.integers(-30, 30)), 150 + int(rng.integers(-20, 20))
    cv2.rectangle(frame, (x0, y0), (x0 + 460, y0 + 240), (190, 170, 235), -1)
    for k in (1, 2, 3):
        cv2.line(frame, (x0, y0 + 60 * k), (x0 + 460, y0 + 60 * k), (160, 140, 205), 3)
    for side in (x0 - 60, x0 + 460):
        cv2.ellipse(frame, (side + 30, y0 + 120), (70, 95), 0, 90 if side < x0 else -90,
                    270 if side < x0 else 90, (235, 235, 235), 6)
    overlay = frame.copy()
    colour = (30, 38, 200) if verdict == "fail" else (20, 140, 210)
    if "stain" in codes or "hole" in codes:
        cx, cy = x0 + 300, y0 + 110
        cv2.circle(overlay, (cx, cy), 14, (60, 80, 110), -1)
        cv2.rectangle(overlay, (cx - 30, cy - 30), (cx + 30, cy + 30), colour, 3)
    else:
        cv2.rectangle(overlay, (x0 - 6, y0 - 6), (x0 + 466, y0 + 246), colour, 3)
    cv2.rectangle(overlay, (0, 0), (960, 60), colour, -1)
    words = ", ".join(PLAIN_WORDS.get(c, c) for c in codes)
    cv2.putText(overlay, verdict.upper(), (16, 44), cv2.FONT_HERSHEY_DUPLEX, 1.4, (255, 255, 255), 2)
    cv2.putText(overlay, words, (230, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    if verdict == "unusable":
        overlay = cv2.GaussianBlur(overlay, (0, 0), 3)
        cv2.rectangle(overlay, (0, 0), (960, 60), colour, -1)
        cv2.putText(overlay, "UNUSABLE", (16, 44), cv2.FONT_HERSHEY_DUPLEX, 1.4, (255, 255, 255), 2)
        cv2.putText(overlay, words, (300, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return frame, overlay


def _provenance() -> Provenance:
    from qc_station.calibration import bundled_sim_calibration
    from qc_station.spec import load_spec

    return Provenance(spec_name=SPEC, spec_version=1, spec_id=load_spec(SPEC).spec_id,
                      calibration_id=bundled_sim_calibration().id, model_sha256="ab" * 32,
                      software_version="test")


def _result(verdict: str, codes: tuple[str, ...], width: float, height: float) -> InspectionResult:
    reasons = tuple(Reason(code=c, message=f"{c} out of spec") for c in codes)
    return InspectionResult(
        image="frame.png", verdict=verdict, reasons=reasons,
        measurements=None if verdict == "unusable" else measurements(width, height),
        anomaly_score=0.1, provenance=_provenance(), timing_ms={"total": 110.0},
    )


def seed_store(store: Store, *, images: bool = True) -> Seeded:
    """Fill ``store`` (its stations must not exist yet). Deterministic."""
    rng = np.random.default_rng(6)
    frames = real_frames() if images else ()
    store.ensure_station(STATION, "Line 1 QC")
    store.ensure_station(OTHER_STATION, "Line 2 QC")
    rejects: list[int] = []
    count = 0

    def add(station, verdict, codes, width, height):
        nonlocal count
        kw = {}
        if images and verdict != "pass":
            frame, overlay = drawn_reject(codes, verdict, len(rejects))
            kw = {"frame_bgr": frame, "annotated_bgr": overlay}
            real_frame, real_overlay, real = frames[0]
            if "ear_loop" in codes and real.reason_codes == ["ear_loop"]:  # the pipeline's own verdict
                kw = {"frame_bgr": real_frame, "annotated_bgr": real_overlay}
                res = real.model_copy(update={"provenance": _provenance()})
                rec = store.record_inspection(res, station_id=station, **kw)
                rejects.append(rec.id)
                count += 1
                return rec
        rec = store.record_inspection(_result(verdict, codes, width, height), station_id=station, **kw)
        if verdict != "pass":
            rejects.append(rec.id)
        count += 1
        return rec

    def batch(station, lot, operator):
        return store.open_batch(station, lot, spec_name=SPEC, spec_version=1, spec_id="test",
                                operator=operator,
                                workshop="Atelier Nord")

    a = batch(STATION, "LOT-A", "ana")
    plan_a = {3: ("fail", ("stain",)), 7: ("fail", ("ear_loop",)), 12: ("unusable", ("blur",)),
              15: ("fail", ("stain", "hole")), 19: ("fail", ("width",))}
    for k in range(24):
        verdict, codes = plan_a.get(k, ("pass", ()))
        w = 186.2 if codes == ("width",) else 180 + rng.normal(0, 0.35)
        add(STATION, verdict, codes, w, 95 + rng.normal(0, 0.3))
    store.close_batch(a.id)

    c_batch = batch(OTHER_STATION, "LOT-C", "cy")
    for k in range(6):
        add(OTHER_STATION, "fail" if k == 2 else "pass", ("open_seam",) if k == 2 else (),
            180 + rng.normal(0, 0.3), 95 + rng.normal(0, 0.3))
    store.close_batch(c_batch.id)

    b = batch(STATION, "LOT-B", "ben")
    drift_first = None
    for k in range(22):
        narrow = k >= 12
        verdict, codes = ("fail", ("stain",)) if k in (4, 16) else ("pass", ())
        w = 179.35 + rng.normal(0, 0.08) if narrow else 180 + rng.normal(0, 0.3)
        rec = add(STATION, verdict, codes, w, 95 + rng.normal(0, 0.3))
        if narrow and drift_first is None:
            drift_first = rec.id
    return Seeded(a.id, b.id, c_batch.id, drift_first, count, rejects)


@dataclass
class Served:
    url: str
    store: Store
    seeded: Seeded
    app: object
    tokens: dict[str, str] = field(default_factory=dict)  # role -> token (when tokens are required)


@contextlib.contextmanager
def served(data_dir: Path, *, tokens: bool = False, images: bool = True, **config):
    """Seed a store in ``data_dir`` and serve it on 127.0.0.1 (a free port) until the block ends."""
    from qc_station.api import create_app
    from qc_station.api.server import ServerThread
    from qc_station.config import parse_config
    from qc_station.store import ImagePolicy

    store = Store(data_dir, policy=ImagePolicy(min_free_mb=0))
    seeded = seed_store(store, images=images)
    issued = {}
    if tokens:
        for role in ("operator", "supervisor", "coordinator", "admin"):
            issued[role] = store.add_user(f"{role}-user", role)[1]
    settings = parse_config({"data_dir": str(data_dir), "station": {"id": STATION, "name": "Line 1 QC",
                                                                    "workshop": "Atelier Nord"},
                             "api": {"require_tokens": tokens}, **config})
    app = create_app(settings, store)
    try:
        with ServerThread(app) as srv:
            yield Served(srv.url, store, seeded, app, issued)
    finally:
        store.close()
