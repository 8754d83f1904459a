"""Benchmark of the defect model on fresh simulator seeds (never used by training).

Per-code recall and precision, false rejects on clean masks, anomaly AUROC on defect kinds the
model never saw (painted, see :mod:`novel`), and ms per mask on one core, for one or more model
files evaluated on the same renders. Needs only numpy / OpenCV / ONNX Runtime and the simulator.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qc_station.training.data import pipeline_crop, render
from qc_station.training.net import CLASSES
from qc_station.training.novel import NOVEL_KINDS, paint_novel
from qc_station.vision.defects import DefectModel
from qc_station.vision.types import MaskCrop

#: Fresh seeds: training uses 1e6..., validation 5e6...; the benchmark starts here by default.
BENCH_SEED_BASE = 9_000_000
#: A finding matches a truth box when it overlaps the box grown by this much (one cell).
MATCH_TOL_MM = 3.2


@dataclass(frozen=True)
class Case:
    """One benchmark mask: the crop, its truth defects (code, box) and its set name."""

    crop: MaskCrop
    truths: tuple[tuple[str, tuple], ...]
    kind: str  # "clean", a CLASSES code, or a NOVEL_KINDS kind


def make_cases(n_per_code: int, n_clean: int, n_novel: int, seed: int = BENCH_SEED_BASE,
               codes: tuple[str, ...] = CLASSES, cache_dir: Path | None = None) -> list[Case]:
    """Render the benchmark set: single-defect masks per code, clean masks, novel-kind masks.

    With ``cache_dir`` the rendered set is kept (pickle) and reused for identical arguments, so
    several models can be compared on the same masks without re-rendering.
    """
    if cache_dir is not None:
        import pickle

        from qc_station.training.data import renderer_fingerprint, sim_backend

        key = (f"{sim_backend()[2]}-{renderer_fingerprint()}-{n_per_code}-{n_clean}-{n_novel}-{seed}-"
               f"{'_'.join(codes)}")
        path = Path(cache_dir) / f"bench-{key}.pkl"
        if path.exists():
            with open(path, "rb") as f:
                return pickle.load(f)
        cases = make_cases(n_per_code, n_clean, n_novel, seed, codes)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            pickle.dump(cases, f)
        return cases
    cases: list[Case] = []
    s = seed
    for code in codes:
        for _ in range(n_per_code):
            r = render(s, (code,))
            s += 1
            cases.append(Case(r.crop, tuple((d.code, d.box_mm) for d in r.truth.defects), code))
    for _ in range(n_clean):
        r = render(s)
        s += 1
        cases.append(Case(r.crop, (), "clean"))
    rng = np.random.default_rng(seed)
    for kind in NOVEL_KINDS:
        for _ in range(n_novel):
            r = render(s)
            s += 1
            crop, box = paint_novel(r.crop, kind, rng)
            cases.append(Case(crop, ((kind, box),), kind))
    return cases


def make_pipeline_cases(n_per_code: int, n_clean: int, seed: int = BENCH_SEED_BASE + 500_000,
                        codes: tuple[str, ...] = CLASSES) -> list[Case]:
    """End-to-end cases: full camera frames through the inspection pipeline's own crop.

    Checks the model on what the station really feeds it (:func:`data.pipeline_crop`) instead
    of the simulator's mask plane. Frames the pipeline cannot crop are skipped and counted.
    """
    cases: list[Case] = []
    skipped = 0
    s = seed
    for kind, n in [*((c, n_per_code) for c in codes), ("clean", n_clean)]:
        for _ in range(n):
            got = pipeline_crop(s, () if kind == "clean" else (kind,))
            s += 1
            if got is None:
                skipped += 1
                continue
            cases.append(Case(got[0], got[1], kind))
    if skipped:
        print(f"(pipeline produced no crop for {skipped} frames; skipped)")
    return cases


def _overlap(a: tuple, b: tuple, tol: float) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw + tol and bx - tol < ax + aw and ay < by + bh + tol and by - tol < ay + ah


def auroc(neg: list[float], pos: list[float]) -> float:
    """Area under the ROC curve (probability a positive scores above a negative; ties half)."""
    if not neg or not pos:
        return float("nan")
    n, p = np.asarray(neg), np.asarray(pos)
    gt = (p[:, None] > n[None, :]).mean()
    eq = (p[:, None] == n[None, :]).mean()
    return float(gt + 0.5 * eq)


@dataclass
class BenchResult:
    model: str
    size_bytes: int
    recall: dict[str, float] = field(default_factory=dict)
    precision: dict[str, float] = field(default_factory=dict)
    # code -> (truths found, truths, findings)
    counts: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    clean_n: int = 0
    clean_reject_findings: int = 0
    clean_reject_anomaly: int = 0
    clean_reject_any: int = 0
    auroc_novel: dict[str, float] = field(default_factory=dict)
    auroc_known: dict[str, float] = field(default_factory=dict)
    novel_flagged: dict[str, float] = field(default_factory=dict)  # fraction rejected (finding or anomaly)
    ms_median: float = 0.0
    ms_p95: float = 0.0
    cpu_ms_median: float = 0.0  # CPU time of the calling thread (ORT runs there with 1 thread)
    anomaly_threshold: float = 0.0


def evaluate(model_path: Path, cases: list[Case], threads: int = 1) -> BenchResult:
    """Run one model over the cases; per-code recall / precision, false rejects, AUROC, timing."""
    model = DefectModel.load(model_path, threads=threads)
    res = BenchResult(str(model_path), os.path.getsize(model_path), anomaly_threshold=model.anomaly_threshold)
    tp_truth = dict.fromkeys(CLASSES, 0)
    n_truth = dict.fromkeys(CLASSES, 0)
    tp_find = dict.fromkeys(CLASSES, 0)
    n_find = dict.fromkeys(CLASSES, 0)
    scores: dict[str, list[float]] = {}
    flagged: dict[str, list[bool]] = {}
    ms, cpu_ms = [], []
    for case in cases:
        t0, c0 = time.perf_counter(), time.thread_time()
        pred = model.predict(case.crop)
        cpu_ms.append((time.thread_time() - c0) * 1000)
        ms.append((time.perf_counter() - t0) * 1000)
        scores.setdefault(case.kind, []).append(pred.anomaly_score)
        anomalous = pred.anomaly_score > model.anomaly_threshold
        flagged.setdefault(case.kind, []).append(bool(pred.findings) or anomalous)
        if case.kind == "clean":
            res.clean_n += 1
            res.clean_reject_findings += bool(pred.findings)
            res.clean_reject_anomaly += anomalous
            res.clean_reject_any += bool(pred.findings) or anomalous
        if case.kind in NOVEL_KINDS:
            continue  # codes found on novel kinds are not scored as right or wrong
        for code, box in case.truths:
            if code not in n_truth:
                continue
            n_truth[code] += 1
            tp_truth[code] += any(f.code == code and _overlap(f.box_mm, box, MATCH_TOL_MM)
                                  for f in pred.findings)
        for f in pred.findings:
            n_find[f.code] += 1
            tp_find[f.code] += any(c == f.code and _overlap(f.box_mm, b, MATCH_TOL_MM)
                                   for c, b in case.truths)
    for code in CLASSES:
        res.recall[code] = tp_truth[code] / n_truth[code] if n_truth[code] else float("nan")
        res.precision[code] = tp_find[code] / n_find[code] if n_find[code] else float("nan")
        res.counts[code] = (tp_truth[code], n_truth[code], n_find[code])
    clean = scores.get("clean", [])
    for kind in NOVEL_KINDS:
        if kind in scores:
            res.auroc_novel[kind] = auroc(clean, scores[kind])
            res.novel_flagged[kind] = float(np.mean(flagged[kind]))
    if any(k in scores for k in NOVEL_KINDS):
        res.auroc_novel["all"] = auroc(clean, [v for k in NOVEL_KINDS for v in scores.get(k, [])])
    for code in CLASSES:
        if code in scores:
            res.auroc_known[code] = auroc(clean, scores[code])
    res.ms_median = float(np.median(ms))
    res.ms_p95 = float(np.percentile(ms, 95))
    res.cpu_ms_median = float(np.median(cpu_ms))
    return res


def report(results: list[BenchResult], echo=print) -> None:
    """Print the results side by side (one column per model)."""
    names = [Path(r.model).name for r in results]
    w = max(14, *(len(n) for n in names)) + 2

    def row(label, vals):
        echo(f"{label:<34}" + "".join(f"{v:>{w}}" for v in vals))

    row("model", names)
    row("size (KB)", [f"{r.size_bytes / 1024:.0f}" for r in results])
    row("ms per mask, 1 thread (median)", [f"{r.ms_median:.1f}" for r in results])
    row("ms per mask, 1 thread (P95)", [f"{r.ms_p95:.1f}" for r in results])
    row("CPU ms per mask, 1 thread (median)", [f"{r.cpu_ms_median:.1f}" for r in results])
    for code in CLASSES:
        row(f"recall {code}",
            [f"{r.recall[code]:.3f} ({r.counts[code][0]}/{r.counts[code][1]})" for r in results])
    for code in CLASSES:
        row(f"precision {code}", [f"{r.precision[code]:.3f}" for r in results])
    row("clean masks", [str(r.clean_n) for r in results])
    row("false rejects (findings)", [f"{r.clean_reject_findings / max(1, r.clean_n):.3f}" for r in results])
    row("false rejects (anomaly)", [f"{r.clean_reject_anomaly / max(1, r.clean_n):.3f}" for r in results])
    row("false rejects (either)", [f"{r.clean_reject_any / max(1, r.clean_n):.3f}" for r in results])
    row("anomaly threshold", [f"{r.anomaly_threshold:.2f}" for r in results])
    for kind in results[0].auroc_novel:
        row(f"AUROC novel {kind}", [f"{r.auroc_novel.get(kind, float('nan')):.3f}" for r in results])
    for kind in results[0].novel_flagged:
        row(f"rejected novel {kind}", [f"{r.novel_flagged[kind]:.2f}" for r in results])
    for code in results[0].auroc_known:
        row(f"AUROC known {code} (info)", [f"{r.auroc_known[code]:.3f}" for r in results])
