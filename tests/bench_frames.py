"""One frame of a `qc-station bench` run, re-rendered and inspected on its own (for regression
tests of frames a bench run got wrong)."""

from __future__ import annotations

from qc_station import sim
from qc_station.cli.bench import bench_calibration, bench_cameras
from qc_station.spec import load_spec
from qc_station.vision.pipeline import Inspector


def inspect_bench_frame(bench_seed: int, camera: int, frame_seed: int, defects: tuple[str, ...],
                        unusable: tuple[str, ...] = ()):
    """(truth, result) of frame ``frame_seed`` of ``qc-station bench --seed bench_seed`` as seen by
    its camera ``camera`` (the frame's line in the bench output names both), without the model.
    ``unusable`` re-renders an unusable frame (``("blur",)`` for a line whose truth is blur)."""
    truth, result, _crop = analyse_bench_frame(bench_seed, camera, frame_seed, defects, unusable)
    return truth, result


def analyse_bench_frame(bench_seed: int, camera: int, frame_seed: int, defects: tuple[str, ...],
                        unusable: tuple[str, ...] = ()):
    """:func:`inspect_bench_frame` plus the mask crop the stages saw: (truth, result, crop)."""
    spec = load_spec()
    cameras, _ = bench_cameras(bench_seed, camera + 1)
    inspector = Inspector(bench_calibration(cameras[camera], camera, bench_seed), spec)
    image, truth = sim.render_case(frame_seed, defects=defects, unusable=unusable, camera=cameras[camera],
                                   spec=spec)
    result, crop = inspector.analyse(image)
    return truth, result, crop


def seam_passes(bench_seed: int, camera: int, frame_seed: int, defects: tuple[str, ...]):
    """:func:`inspect_bench_frame` plus every (crop, SeamResult) the seam tracker was called with,
    in order: the first crop is on the outline fitted without seam hints, a second one (if any)
    on the outline the hints moved."""
    from unittest import mock

    from qc_station.vision.seam import analyze_seam

    calls = []

    def record(crop, spec):
        calls.append((crop, analyze_seam(crop, spec)))
        return calls[-1][1]

    with mock.patch("qc_station.vision.pipeline.analyze_seam", side_effect=record):
        truth, result = inspect_bench_frame(bench_seed, camera, frame_seed, defects)
    return truth, result, calls
