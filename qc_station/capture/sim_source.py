"""Frames from the simulator: a tray where an operator lays masks, or a conveyor of masks.

*tray* mode plays a loop of scenes per mask: the empty tray, hands laying the mask, the mask
lying still, hands taking it away (frame counts configurable). That is what the placement
trigger must cope with. *conveyor* mode renders a fresh mask on every read (the station reads
when the belt trigger fires).

Each mask gets defects drawn independently with the probabilities of ``defect_rates`` (per
code of :data:`qc_station.sim.truth.SIM_DEFECTS`) and unusable cases with ``unusable_rates``
(``no_mask``, ``blur``, ``exposure``). The simulator's exact truth of the scene under the frame
is attached as ``frame.metadata["sim_truth"]`` (a :class:`~qc_station.sim.truth.SceneTruth`)
so demos and benchmarks can score the station; ``"sim_phase"`` says what the frame shows.

The simulator is imported lazily (it pulls in the renderer); ``sim=`` injects a stand-in.
"""

from __future__ import annotations

import importlib
import logging
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from qc_station.capture.base import FrameSource
from qc_station.capture.frame import SIM_TRUTH_KEY, Frame
from qc_station.errors import CameraError

log = logging.getLogger(__name__)

#: A mix that gives a demo mostly passes with every kind of failure now and then.
DEFAULT_DEFECT_RATES: dict[str, float] = {
    "width": 0.03, "height": 0.02, "pleats": 0.02, "ear_loop": 0.03, "stitch_length": 0.02,
    "skipped_stitch": 0.03, "open_seam": 0.03, "stain": 0.05, "hole": 0.03,
}
DEFAULT_UNUSABLE_RATES: dict[str, float] = {"blur": 0.02, "exposure": 0.02}

SKIN_BGR = ((120, 150, 205), (95, 125, 180), (70, 95, 140), (150, 175, 225))
GLOVE_BGR = ((200, 120, 60), (235, 235, 235))  # blue nitrile, white cotton


@dataclass(frozen=True)
class _Scene:
    image: np.ndarray
    truth: Any
    center_px: tuple[float, float] | None
    defects: tuple[str, ...]
    unusable: tuple[str, ...]


def _validate_rates(rates: Mapping[str, float], allowed: tuple[str, ...], what: str) -> dict[str, float]:
    out = {}
    for code, p in rates.items():
        if code not in allowed:
            raise ValueError(f"unknown {what} code {code!r}; choose from {list(allowed)}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{what} rate for {code!r} must be in [0, 1], got {p}")
        out[code] = float(p)
    return out


def _load_simulator() -> Any:
    """The simulator's public functions (from the package, or its modules if it exports none)."""
    names = {"default_camera": "camera", "random_mask_params": "params", "render_scene": "scene"}
    try:
        package = importlib.import_module("qc_station.sim")
        found = {}
        for name, mod in names.items():
            found[name] = getattr(package, name, None) or getattr(
                importlib.import_module(f"qc_station.sim.{mod}"), name)
        return types.SimpleNamespace(**found)
    except (ImportError, AttributeError) as exc:
        raise CameraError(f"the simulator is not available in this build: {exc}") from exc


class SimSource(FrameSource):
    """Simulated station camera (see the module doc).

    Args:
        mode: ``"tray"`` or ``"conveyor"``.
        seed: everything drawn (masks, defects, hands) follows from it.
        defect_rates: probability per defect code, drawn independently per mask.
        unusable_rates: probability per unusable case (``no_mask``, ``blur``, ``exposure``).
        empty_frames, hands_frames, still_frames: tray mode: frames per phase.
        fps: pace ``read`` to this frame rate (None: as fast as rendering goes).
        noise_sigma: fresh sensor noise per frame (grey levels), so still frames are not
            bit-identical, as with a real camera.
        tray: the station's tray kind (one of ``qc_station.sim.tray.TRAYS``); the same tray
            surface and lamp are used for every frame of the session, like a real station, and
            masks are drawn in fabrics that contrast with it. None: a random tray per mask.
        sim: the simulator module (default ``qc_station.sim``); must offer ``default_camera()``,
            ``random_mask_params(rng, defects=...)`` and ``render_scene(camera, params, rng,
            unusable=...) -> (image, SceneTruth)``.
    """

    def __init__(
        self,
        *,
        mode: str = "tray",
        seed: int = 0,
        defect_rates: Mapping[str, float] | None = None,
        unusable_rates: Mapping[str, float] | None = None,
        empty_frames: int = 6,
        hands_frames: int = 4,
        still_frames: int = 12,
        fps: float | None = None,
        noise_sigma: float = 1.5,
        tray: str | None = "dark_grey",
        sim: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if mode not in ("tray", "conveyor"):
            raise ValueError(f"mode must be 'tray' or 'conveyor', got {mode!r}")
        if min(empty_frames, hands_frames, still_frames) < 0 or still_frames < 1:
            raise ValueError("frame counts must be >= 0 and still_frames >= 1")
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        super().__init__(f"sim:{mode}:{seed}")
        from qc_station.sim.truth import SIM_DEFECTS, SIM_UNUSABLE  # light module: no renderer

        self.mode = mode
        self.seed = seed
        self.defect_rates = _validate_rates(
            DEFAULT_DEFECT_RATES if defect_rates is None else defect_rates, SIM_DEFECTS, "defect")
        self.unusable_rates = _validate_rates(
            DEFAULT_UNUSABLE_RATES if unusable_rates is None else unusable_rates, SIM_UNUSABLE, "unusable")
        self.empty_frames = empty_frames
        self.hands_frames = hands_frames
        self.still_frames = still_frames
        self.fps = fps
        self.noise_sigma = noise_sigma
        self.tray = tray
        self._sim_override = sim
        self._station: _FixedStation | None = None
        self._sim: Any = None
        self._camera: Any = None
        self._clock = clock
        self._sleep = sleep
        self._rng = np.random.default_rng(seed)
        self._plan: list[tuple[str, int]] = []  # (phase, index within phase) still to play
        self._scene: _Scene | None = None
        self._empty: _Scene | None = None
        self._placement = -1
        self._next_time: float | None = None

    # -- FrameSource ----------------------------------------------------------------------------

    def _open(self) -> None:
        sim = self._sim_override
        if sim is None:
            sim = _load_simulator()
        self._sim = sim
        self._camera = sim.default_camera()
        self._next_time = None
        self._station = None
        if self._sim_override is None and self.tray is not None:
            self._station = _FixedStation.build(self._camera, self.tray, self.seed)

    def _close(self) -> None:
        self._plan = []

    def _read(self, timeout_s: float) -> Frame:
        self._pace()
        if self.mode == "conveyor":
            scene = self._render_mask_scene()
            self._placement += 1
            return self._emit(scene.image, scene, "placed", extra={"belt_index": self._placement})
        if not self._plan:
            self._start_placement()
        phase, k = self._plan.pop(0)
        scene = self._scene if phase in ("placing", "placed", "removing") else self._empty
        assert scene is not None
        image = scene.image
        if phase in ("placing", "removing"):
            # The arms reach in and out again: a different pose on every frame.
            r = (k + 1) / (self.hands_frames + 1)
            image = self._draw_hands(image, scene.center_px, 0.35 + 0.65 * (1.0 - abs(2 * r - 1)))
        return self._emit(image, scene, phase)

    # -- scenes -------------------------------------------------------------------------------

    def _draw_mix(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        defects = tuple(c for c, p in self.defect_rates.items() if self._rng.uniform() < p)
        unusable = tuple(c for c, p in self.unusable_rates.items() if self._rng.uniform() < p)
        return defects, unusable

    def _render(self, defects: tuple[str, ...], unusable: tuple[str, ...]) -> _Scene:
        if self._station is not None:
            params = self._station.mask_params(self._sim, self._rng, defects)
            image, truth = self._station.render(params, self._rng, unusable)
        else:
            params = self._sim.random_mask_params(self._rng, defects=defects)
            kwargs = {"tray": self.tray} if self.tray is not None else {}
            image, truth = self._sim.render_scene(self._camera, params, self._rng, unusable=unusable,
                                                  **kwargs)
        center = None
        mask_truth = getattr(truth, "mask", None)
        if mask_truth is not None:
            pts = np.array([[*mask_truth.center_tray_mm, 0.0]], dtype=np.float64)
            u, v = self._camera.project(pts)[0]
            center = (float(u), float(v))
        return _Scene(np.ascontiguousarray(image), truth, center, defects, unusable)

    def _render_mask_scene(self) -> _Scene:
        defects, unusable = self._draw_mix()
        return self._render(defects, unusable)

    def _start_placement(self) -> None:
        self._placement += 1
        self._scene = self._render_mask_scene()
        if self._empty is None:
            self._empty = self._render((), ("no_mask",))  # the renderer leaves the mask out
        self._plan = (
            [("empty", k) for k in range(self.empty_frames)]
            + [("placing", k) for k in range(self.hands_frames)]
            + [("placed", k) for k in range(self.still_frames)]
            + [("removing", k) for k in range(self.hands_frames)]
        )

    def _draw_hands(self, image: np.ndarray, target_px: tuple[float, float] | None,
                    reach: float) -> np.ndarray:
        """Two arms reaching from the bottom edge towards the mask (reach 0 = out, 1 = on it)."""
        h, w = image.shape[:2]
        out = image.copy()
        tx, ty = target_px if target_px is not None else (w / 2, h / 2)
        color = SKIN_BGR[int(self._rng.integers(len(SKIN_BGR)))] if self._rng.uniform() < 0.7 else \
            GLOVE_BGR[int(self._rng.integers(len(GLOVE_BGR)))]
        arm_w = 0.09 * w
        for side in (-1, 1):
            base = np.array([tx + side * 0.18 * w, h * 1.05])
            tip = np.array([tx + side * 0.08 * w, ty]) * reach + base * (1 - reach)
            tip += self._rng.normal(0, 0.01 * w, 2)
            d = tip - base
            nrm = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9)
            poly = np.array([base + nrm * arm_w / 2, tip + nrm * arm_w * 0.4,
                             tip - nrm * arm_w * 0.4, base - nrm * arm_w / 2], dtype=np.int32)
            cv2.fillConvexPoly(out, poly, color, lineType=cv2.LINE_AA)
            cv2.circle(out, (int(tip[0]), int(tip[1])), int(arm_w * 0.55), color, -1, cv2.LINE_AA)
        return out

    # -- output -------------------------------------------------------------------------------

    def _emit(self, image: np.ndarray, scene: _Scene, phase: str, extra: dict | None = None) -> Frame:
        if self.noise_sigma > 0:
            noise = np.empty(image.shape, np.int16)
            cv2.randn(noise, 0, self.noise_sigma)
            image = cv2.add(image, noise, dtype=cv2.CV_8U)
        meta: dict[str, Any] = {
            "camera": "sim",
            "camera_model": getattr(self._camera, "name", "sim"),
            SIM_TRUTH_KEY: scene.truth,
            "sim_phase": phase,
            "sim_placement": self._placement,
            "sim_defects": scene.defects,
            "sim_unusable": scene.unusable,
            "sim_seed": self.seed,
        }
        if extra:
            meta.update(extra)
        return self._make_frame(image, meta)

    def _pace(self) -> None:
        if self.fps is None:
            return
        now = self._clock()
        if self._next_time is not None and now < self._next_time:
            self._sleep(self._next_time - now)
            now = self._next_time
        self._next_time = now + 1.0 / self.fps


class _FixedStation:
    """One tray surface and one lamp for a whole session (the simulator draws both per frame).

    Built from the simulator's parts: the tray texture is rendered once, each mask is
    composited onto a copy, and the exposure (light fall-off, white balance) always starts from
    the same seed, so an empty tray looks the same before and after every mask, as it does on a
    real station. Fabrics that do not contrast with the tray are redrawn, as an operator would
    not use such a tray.
    """

    def __init__(self, camera: Any, kind: str, seed: int, radiance: np.ndarray, mm_per_px: float,
                 parts: dict[str, Any]) -> None:
        self.camera, self.kind, self.seed = camera, kind, seed
        self.radiance, self.mm_per_px, self.parts = radiance, mm_per_px, parts

    @classmethod
    def build(cls, camera: Any, kind: str, seed: int) -> _FixedStation | None:
        try:
            from qc_station.sim import draw, geometry, scene, sensor, tray

            parts = {"draw_mask_layer": draw.draw_mask_layer, "composite": scene._composite,
                     "mask_truth": scene.mask_truth, "expose": sensor.expose, "lum": tray._lum,
                     "trays": tray.TRAYS}
            mmpp = float(geometry.mm_per_px_at_center(camera))
            if kind not in tray.TRAYS:
                raise ValueError(f"unknown tray {kind!r}; choose from {list(tray.TRAYS)}")
            w, h = camera.image_size
            radiance = tray.tray_texture(np.random.default_rng([seed, 1]), h, w, kind, px_per_mm=1 / mmpp)
        except (ImportError, AttributeError) as exc:  # the simulator changed: use its public API
            log.warning("sim: fixed-tray rendering unavailable (%s); trays vary per mask", exc)
            return None
        return cls(camera, kind, seed, radiance, mmpp, parts)

    def mask_params(self, sim: Any, rng: np.random.Generator, defects: tuple[str, ...]) -> Any:
        lum, tray_lum = self.parts["lum"], self.parts["lum"](self.parts["trays"][self.kind])
        params = None
        for _ in range(30):
            params = sim.random_mask_params(rng, defects=defects)
            if abs(lum(params.fabric.mean_color) - tray_lum) >= 0.18:
                break
        return params

    def render(self, params: Any, rng: np.random.Generator,
               unusable: tuple[str, ...]) -> tuple[np.ndarray, Any]:
        from qc_station.sim.truth import SceneTruth

        frame = self.radiance.copy()
        knobs: dict[str, Any] = {"tray": self.kind, "camera": getattr(self.camera, "name", "sim")}
        truth_mask = None
        if "no_mask" not in unusable and params is not None:
            layer = self.parts["draw_mask_layer"](params, mm_per_px=self.mm_per_px)
            self.parts["composite"](self.camera, params, layer, frame, rng)
            truth_mask = self.parts["mask_truth"](params, layer)
        else:
            unusable = ("no_mask", *[u for u in unusable if u != "no_mask"])
        lamp = np.random.default_rng([self.seed, 2])  # the same light on every frame
        image = self.parts["expose"](frame, lamp, unusable=unusable, info=knobs)
        return image, SceneTruth(mask=truth_mask, unusable=unusable, mm_per_px_center=self.mm_per_px,
                                 params=knobs)
