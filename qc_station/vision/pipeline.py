"""The inspection pipeline: one camera frame -> :class:`~qc_station.results.InspectionResult`.

Stages (``timing_ms`` keys): ``quality`` (exposure figures), ``rectify`` (coarse tray view,
1 mm/px), ``segment`` (tray model, foreground, body, first pose), ``outline`` (sub-pixel
rectangle fit on a 0.2 mm/px de-rotated crop; blur score), ``crop`` (the final
:class:`MaskCrop` on the refined pose), ``seam`` (the seam tracker; when it hints that an
edge lies further out, the outline fit, the crop and the tracker again), ``loops``, ``pleats``,
``defects`` (the ONNX classifier, when a model is given), ``holes``, ``decide``; ``total``.

Everything is in the tray plane in mm; pixels never leave this package. An :class:`Inspector`
is built once per (calibration, spec, model) and reused for every frame; it holds no
per-frame state.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from qc_station import __version__
from qc_station.calibration.model import StationCalibration
from qc_station.decide import decide, plugin_failure
from qc_station.results import InspectionResult, Measurements, Provenance, Quality, Reason
from qc_station.spec import MaskSpec
from qc_station.vision import quality as q
from qc_station.vision.annotate import annotate
from qc_station.vision.geometry import CropGrid, MaskPose
from qc_station.vision.holes import find_holes
from qc_station.vision.loops import count_loops
from qc_station.vision.outline import edge_profiles, fit_profiles
from qc_station.vision.pleats import count_pleats
from qc_station.vision.rectify import tray_view
from qc_station.vision.seam import analyze_seam
from qc_station.vision.segment import coarse_pose, foreground, grow_foreground
from qc_station.vision.types import MaskCrop

#: Coarse view (segmentation) and fine crop (outline, seam, classifier) scales.
COARSE_MM_PER_PX = 1.0
#: Node spacing of the remap tables used to sample crops: interpolating them agrees with exact
#: projection to ~0.02 px (cv2.remap's 1/32-node grid is the limit, so finer nodes help).
TABLES_MM_PER_PX = 0.25
CROP_MM_PER_PX = 0.2
#: Gaussian sigma of the region-level retry of the segmentation (no mask-sized object found).
RETRY_SMOOTH_MM = 2.0
#: ... made when the per-pixel foreground, or the body left after opening the loops away, is
#: below this fraction of the nominal mask area, and kept when its body is this many times more.
RETRY_AREA_FRACTION = 0.8
RETRY_GAIN = 1.2
#: Second retry: hysteresis down to this many tray-spreads from the pixels above the threshold.
RETRY_GROW_SIGMAS = 4.0
#: Tray kept around the outline in the MaskCrop (seam tracker and classifier see the edge).
CROP_MARGIN_MM = 10.0
#: Crop margin for the first outline fit (covers the coarse pose's error + the profiles).
FIT_MARGIN_MM = 12.0


class _Clock:
    def __init__(self, timer=time.perf_counter) -> None:
        self.timer = timer
        self.t0 = self.t = timer()
        self.ms: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = self.timer()
        self.ms[name] = round((now - self.t) * 1000.0, 2)
        self.t = now

    def done(self) -> dict[str, float]:
        self.ms["total"] = round((self.timer() - self.t0) * 1000.0, 2)
        return dict(self.ms)


def _quality(expo: q.ExposureStats, sharpness: float) -> Quality:
    return Quality(sharpness=round(sharpness, 4), mean_level=round(expo.mean_level, 2),
                   clipped_high=round(expo.clipped_high, 5), clipped_low=round(expo.clipped_low, 5))


def _gate_reason(issue: q.GateIssue) -> Reason:
    return Reason(code=issue.code, message=issue.message, severity="major", value=round(issue.value, 4),
                  lower=issue.lower, upper=issue.upper, unit=issue.unit)


class Inspector:
    """Inspects frames of one station (calibration) against one spec, optionally with a model.

    ``model`` is a :class:`qc_station.vision.defects.DefectModel` (or anything with ``sha256``
    and ``predict(crop)``); None runs no classifier (stain / hole checks are not made, and the
    provenance says so with ``model_sha256=None``).
    """

    #: Clock of ``timing_ms``: wall time; the benchmark sets ``time.thread_time`` (CPU time of
    #: this thread, immune to other load on a shared machine).
    timer = staticmethod(time.perf_counter)

    def __init__(self, calibration: StationCalibration, spec: MaskSpec, *, model=None) -> None:
        self.calibration = calibration if calibration.id else calibration.with_id()
        self.spec = spec
        self.model = model
        self.view = tray_view(self.calibration, COARSE_MM_PER_PX)  # built once, cached
        # finer tables, only to sample rotated crops / lines (the camera image is interpolated once)
        self.tables = tray_view(self.calibration, TABLES_MM_PER_PX)
        # the picture's own edge in the coarse view (a body touching it is cut off)
        self._view_edge = cv2.dilate((~self.view.valid).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        self.provenance = Provenance(
            spec_name=spec.name, spec_version=spec.version, spec_id=spec.spec_id,
            calibration_id=self.calibration.id, model_sha256=getattr(model, "sha256", None),
            software_version=__version__,
        )

    # -- public ------------------------------------------------------------------------------
    def inspect(self, image_bgr: np.ndarray, *, image_name: str | None = None) -> InspectionResult:
        """Inspect one BGR uint8 frame of this station's camera."""
        clock = _Clock(self.timer)
        if image_bgr is None or image_bgr.ndim not in (2, 3) or image_bgr.dtype != np.uint8:
            return self._unusable(image_name, [Reason(code="unreadable", message="not an 8-bit image")],
                                  None, clock)
        if image_bgr.ndim == 2:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2BGR)
        elif image_bgr.shape[2] == 4:
            image_bgr = cv2.cvtColor(image_bgr, cv2.COLOR_BGRA2BGR)
        h, w = image_bgr.shape[:2]
        if (w, h) != tuple(self.calibration.image_size):
            cw, ch = self.calibration.image_size
            return self._unusable(image_name, [Reason(
                code="unreadable", message=f"image is {w}x{h} px but the calibration is for {cw}x{ch} px")],
                None, clock)
        analysis = self._analyse(image_bgr, clock)
        return analysis[0].model_copy(update={"image": image_name})

    def inspect_path(self, path: str | Path, *, image_name: str | None = None) -> InspectionResult:
        """Read and inspect an image file; an unreadable or corrupt file is an ``unreadable``
        result, never an exception."""
        return self.inspect_file(path, image_name=image_name)[0]

    def inspect_file(self, path: str | Path, *,
                     image_name: str | None = None) -> tuple[InspectionResult, np.ndarray | None]:
        """:meth:`inspect_path`, also returning the decoded frame (None if unreadable)."""
        clock = _Clock(self.timer)
        name = image_name if image_name is not None else str(path)
        image, problem = read_image(path)
        if image is None:
            return self._unusable(name, [Reason(code="unreadable", message=problem)], None, clock), None
        decode_ms = (self.timer() - clock.t0) * 1000.0
        result = self.inspect(image, image_name=name)
        timing = {"decode": round(decode_ms, 2), **result.timing_ms}
        timing["total"] = round(timing.get("total", 0.0) + decode_ms, 2)
        return result.model_copy(update={"timing_ms": timing}), image

    def annotate(self, image_bgr: np.ndarray | None, result: InspectionResult) -> np.ndarray:
        """The frame with outline, dimensions, seam, every reason where it is, and a big verdict
        banner (``image_bgr`` None, e.g. unreadable: a plain canvas with the banner)."""
        return annotate(image_bgr, result, self.calibration)

    def analyse(self, image_bgr: np.ndarray) -> tuple[InspectionResult, MaskCrop | None]:
        """Like :meth:`inspect`, also returning the mask crop (for training / debugging)."""
        return self._analyse(image_bgr, _Clock(self.timer))

    # -- stages --------------------------------------------------------------------------------
    def _unusable(self, name, reasons, quality, clock) -> InspectionResult:
        return InspectionResult(image=name, verdict="unusable", reasons=tuple(reasons), quality=quality,
                                provenance=self.provenance, timing_ms=clock.done())

    def _analyse(self, image: np.ndarray, clock: _Clock) -> tuple[InspectionResult, MaskCrop | None]:
        spec, view = self.spec, self.view
        expo = q.exposure_stats(image)
        clock.lap("quality")
        if frame_issue := q.exposure_issue(expo):  # the root cause: nothing else can be judged
            verdict, reasons = decide(None, None, None, [_gate_reason(frame_issue)], spec)
            return InspectionResult(verdict=verdict, reasons=reasons, quality=_quality(expo, 0.0),
                                    provenance=self.provenance, timing_ms=clock.done()), None
        coarse = view.rectify(image)
        clock.lap("rectify")
        fgr = foreground(coarse, view.valid, view.mm_per_px)
        area_mm2 = float(fgr.fg.sum()) * view.mm_per_px**2
        nominal_area = spec.dimensions.width_mm.nominal * spec.dimensions.height_mm.nominal
        body_mm2 = self._body_mm2(fgr.fg) if area_mm2 >= RETRY_AREA_FRACTION * nominal_area else 0.0
        if body_mm2 < RETRY_AREA_FRACTION * nominal_area:
            # a fabric close to a noisy tray (dark print on black) drowns in the per-pixel noise
            # floor, leaving nothing or only its light parts (stripes): decide again on regions
            # before calling the tray empty or measuring a piece. Failing that, a low-contrast
            # fabric on a mottled tray (whose spread sets a high floor) is grown from what does
            # stand out in the per-pixel pass (its edge, its loops) by hysteresis.
            first = fgr
            retries = (lambda: foreground(coarse, view.valid, view.mm_per_px, smooth_mm=RETRY_SMOOTH_MM),
                       lambda: grow_foreground(first, view.valid, view.mm_per_px, RETRY_GROW_SIGMAS))
            for make in retries:
                retry = make()
                if (retry_mm2 := self._body_mm2(retry.fg)) > RETRY_GAIN * max(body_mm2, 1.0):
                    fgr, body_mm2 = retry, retry_mm2
                    area_mm2 = float(fgr.fg.sum()) * view.mm_per_px**2
                if body_mm2 >= RETRY_AREA_FRACTION * nominal_area:
                    break
        issues: list[q.GateIssue] = []
        pose0 = None
        if (issue := q.no_mask_issue(area_mm2, nominal_area)) is None:
            pose0 = coarse_pose(fgr.fg, view.mm_per_px)
            if pose0 is None or pose0.area_px * view.mm_per_px**2 < q.MIN_AREA_FRACTION * nominal_area:
                issue = q.no_mask_issue(0.0 if pose0 is None else pose0.area_px * view.mm_per_px**2,
                                        nominal_area)
            elif (cut := float((pose0.body & self._view_edge).sum())) > 0:
                issue = q.GateIssue("no_mask", "the mask is not entirely in the picture (touches its "
                                    "edge): move it to the middle of the tray", cut * view.mm_per_px,
                                    upper=0.0, unit="mm of outline at the picture's edge")
        if issue:
            issues.append(issue)
        clock.lap("segment")

        outline, sharpness, clipped_mask, contrast = None, 0.0, None, None
        if pose0 is not None and not issues:
            c = view.px_to_tray(np.array(pose0.center_px))
            first = MaskPose((float(c[0]), float(c[1])), pose0.angle_deg,
                             pose0.size_px[0] * view.mm_per_px, pose0.size_px[1] * view.mm_per_px)
            grid = CropGrid.around(first, FIT_MARGIN_MM, CROP_MM_PER_PX)
            profiles = edge_profiles(lambda *win: grid.sample(self.tables, image, win), grid)
            outline = fit_profiles(profiles, grid)
            sharpness = q.edge_sharpness(profiles, CROP_MM_PER_PX)
            on_mask = coarse[pose0.body]  # saturated = every channel clipped (white, not a vivid colour)
            clipped_mask = float((on_mask.min(axis=1) >= 250).mean()) if on_mask.size else 0.0
            tray = coarse[view.valid & ~fgr.fg]
            contrast = float(np.linalg.norm(np.median(on_mask, axis=0) - np.median(tray, axis=0)))
            if outline is None:
                issues.append(q.GateIssue("no_mask", "no clear mask outline found", 0.0, unit="sides"))
        e_issue = q.exposure_issue(expo, clipped_mask, contrast)
        if e_issue:
            issues.insert(0, e_issue)
        elif outline is not None and (b := q.blur_issue(sharpness)):
            issues.append(b)
        quality = _quality(expo, sharpness)
        clock.lap("outline")
        if issues:
            verdict, reasons = decide(None, None, None, [_gate_reason(i) for i in issues], spec)
            return InspectionResult(verdict=verdict, reasons=reasons, quality=quality,
                                    provenance=self.provenance, timing_ms=clock.done()), None

        crop = self._mask_crop(image, outline.pose, fgr.fg)
        clock.lap("crop")
        failed: list[Reason] = []  # plug-ins that raised: the mask fails, the station goes on
        try:
            seam = analyze_seam(crop, spec)
            # a clearly dashed seam unusually close to one edge: that edge may lie further out
            # (a tray-coloured stripe along it); the outline looks again, then the seam
            if seam.edge_hints_mm and (again := fit_profiles(profiles, grid, seam.edge_hints_mm)) \
                    and again.moved_mm:
                outline = again
                crop = self._mask_crop(image, outline.pose, fgr.fg)
                seam = analyze_seam(crop, spec)
        except Exception as exc:  # any bug inside the tracker
            seam = None
            failed.append(plugin_failure("seam tracker", "the seam", exc, spec))
        clock.lap("seam")
        pose = outline.pose
        loops = count_loops(image, self.tables, pose)
        clock.lap("loops")
        pleats = count_pleats(crop)
        clock.lap("pleats")
        try:
            pred = self.model.predict(crop) if self.model is not None else None
        except Exception as exc:  # any bug inside the classifier
            pred = None
            failed.append(plugin_failure("defect classifier", "stains, holes and anomalies", exc, spec))
        clock.lap("defects")
        holes = find_holes(crop, min_diameter_mm=spec.appearance.hole_min_mm)
        clock.lap("holes")
        # a raised edge (hem at height h) is seen magnified by H / (H - h) about the camera's
        # nadir (a homothety between parallel planes, exact for a pinhole): back to plane z = -h
        h_mm, cam_mm = spec.dimensions.outline_height_mm, self.calibration.camera_height_mm
        scale = (cam_mm - h_mm) / cam_mm if 0 < h_mm < cam_mm else 1.0
        m = Measurements(
            width_mm=round(pose.width_mm * scale, 3), height_mm=round(pose.height_mm * scale, 3),
            angle_deg=round(pose.angle_deg, 3),
            center_tray_mm=(round(pose.center_tray_mm[0], 3), round(pose.center_tray_mm[1], 3)),
            pleats=pleats.count, ear_loops=loops.left + loops.right,
            ear_loops_left=loops.left, ear_loops_right=loops.right,
            stitch_length_mm=_r(seam.stitch_length_mm) if seam else None,
            stitch_length_p90_mm=_r(seam.stitch_length_p90_mm) if seam else None,
            seam_distance_mm=_r(seam.distance_mm) if seam else None,
            seam_coverage=_r(seam.coverage) if seam else None,
            skipped_stitches=len(seam.skipped) if seam else 0,
            open_seams=len(seam.open_seams) if seam else 0,
        )
        verdict, reasons = decide(m, seam, pred, [], spec, failed=failed, findings=holes.findings)
        clock.lap("decide")
        findings = (*(seam.skipped if seam else ()), *(seam.open_seams if seam else ()),
                    *holes.findings, *(pred.findings if pred else ()))
        result = InspectionResult(
            verdict=verdict, reasons=reasons, measurements=m, defects=findings,
            anomaly_score=round(float(pred.anomaly_score), 4) if pred else None,
            quality=quality, provenance=self.provenance, timing_ms=clock.done(),
        )
        return result, crop

    def _body_mm2(self, fg: np.ndarray) -> float:
        pose = coarse_pose(fg, self.view.mm_per_px)
        return 0.0 if pose is None else pose.area_px * self.view.mm_per_px**2

    def _mask_crop(self, image: np.ndarray, pose: MaskPose, fg_coarse: np.ndarray) -> MaskCrop:
        grid = CropGrid.around(pose, CROP_MARGIN_MM, CROP_MM_PER_PX)
        img = grid.sample(self.tables, image)
        w, h = grid.size_px
        # body: inside the fitted rectangle and foreground (rounded corners), loops excluded
        cols = grid.origin_mm[0] + np.arange(w) * grid.mm_per_px
        rows = grid.origin_mm[1] + np.arange(h) * grid.mm_per_px
        rect = (((rows >= 0) & (rows <= pose.height_mm))[:, None]
                & ((cols >= 0) & (cols <= pose.width_mm))[None, :])
        fg = grid.resample_view(self.view, fg_coarse.astype(np.uint8)) > 0
        return MaskCrop(image=img, body=rect & fg, mm_per_px=grid.mm_per_px, origin_mm=grid.origin_mm,
                        width_mm=pose.width_mm, height_mm=pose.height_mm)


def read_image(path: str | Path) -> tuple[np.ndarray | None, str]:
    """Decode an image file as BGR; (None, why) when it is missing, empty or corrupt."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        return None, f"cannot read file: {exc}"
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        return None, "not a readable image (empty or corrupt file)"
    return image, ""


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(float(v), nd)
