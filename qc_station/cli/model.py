"""``qc-station model``: train, export, quantise, benchmark, evaluate and inspect the defect model."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
The defect classifier (stain, hole, open_seam, skipped_stitch) and the anomaly score.

  train     render training masks from the simulator, train from scratch (fixed seed), export to
            ONNX, check torch/ONNX parity, quantise to int8 (static QDQ), fit the anomaly
            whitening on good masks, pick the fusion weights and thresholds on validation masks.
            Needs the 'train' extra (torch). ~26 min on an idle 2-core machine (measured).
  package   the same steps after training, from saved weights (defects_net.pt): re-packaging.
  export    export saved weights (defects_net.pt) to fp32 ONNX and print the parity check.
  quantize  int8 static QDQ quantisation of an fp32 ONNX file, calibrated on simulator tiles.
  bench     fresh simulator seeds: per-code recall/precision, false rejects on clean masks,
            anomaly AUROC on defect kinds never trained on, ms per mask on one core (fp32 vs int8).
  eval      the real image sets in ../shared/realdata (evaluation only; they never train).
  info      metadata, classes, thresholds and sha256 of a model file (checks that it loads).

Examples:
  nice qc-station model train --out models/ --seed 0
  qc-station model bench --models models/defects_fp32.onnx models/defects.onnx
  qc-station model eval --realdata ../shared/realdata
  qc-station model info
"""


def register(subparsers) -> None:
    from qc_station.training.config import TrainConfig
    p = subparsers.add_parser(
        "model", help="train / export / quantise / benchmark the defect model", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")

    t = sub.add_parser("train", help="train from the simulator and write the model files")
    t.add_argument("--out", type=Path, default=Path("models"), help="output folder (default: models/)")
    t.add_argument("--seed", type=int, default=0)
    d = TrainConfig()
    t.add_argument("--masks", type=int, default=None, help=f"rendered training masks (default {d.n_masks})")
    t.add_argument("--epochs", type=int, default=None, help=f"epochs (default {d.epochs})")
    t.add_argument("--threads", type=int, default=d.threads,
                   help=f"torch threads (default {d.threads}; more only on an otherwise idle machine)")
    t.add_argument("--workers", type=int, default=d.workers,
                   help=f"augmentation processes next to the training one (default {d.workers})")
    t.add_argument("--pipeline-masks", type=int, default=None,
                   help="extra training masks rendered as camera frames through the inspection pipeline's "
                        f"crop (default {d.pipeline_masks})")
    t.add_argument("--mine-pipeline", type=int, default=None,
                   help="clean camera frames through the pipeline for hard-negative mining "
                        f"(default {d.mine_pipeline_masks})")
    _threshold_pipeline_arg(t)
    t.add_argument("--exclude", nargs="*", default=(), help="defect codes left out (anomaly experiment)")
    t.add_argument("--init", default=None, help="start from these weights (defects_net.pt): fine-tuning")
    t.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {d.lr:g})")
    t.add_argument("--pos-weight", type=float, default=None,
                   help=f"BCE weight of positive cells (default {d.pos_weight:g})")
    t.add_argument("--center-margin", type=int, default=None,
                   help=f"loss only on cells this far from the patch edge (default {d.center_margin_cells}; "
                   "0 = all cells)")
    t.add_argument("--version", default="1.0.0", help="model version written into the metadata")
    t.add_argument("--cache", type=Path, default=None,
                   help="keep the rendered patch bank here and reuse it when identical (iterating)")
    t.set_defaults(func=_train)

    k = sub.add_parser("package", help="saved weights (.pt) -> shipped files (int8, anomaly, thresholds)",
                       description="Export, parity check, int8, anomaly head, fusion weights and "
                                   "thresholds from saved weights, without training (~3 min).")
    k.add_argument("weights", type=Path, help="a defects_net.pt written by 'model train'")
    k.add_argument("--out", type=Path, required=True,
                   help="directory for defects.onnx, defects_fp32.onnx and build_log.json")
    k.add_argument("--version", required=True, help="model version written into the metadata")
    _threshold_pipeline_arg(k)
    k.set_defaults(func=_package)

    e = sub.add_parser("export", help="weights (.pt) -> fp32 ONNX + parity check")
    e.add_argument("weights", type=Path)
    e.add_argument("--out", type=Path, required=True)
    e.set_defaults(func=_export)

    q = sub.add_parser("quantize", help="fp32 ONNX (with a 'features' output) -> int8 static QDQ")
    q.add_argument("fp32", type=Path)
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--calib-masks", type=int, default=48)
    q.set_defaults(func=_quantize)

    b = sub.add_parser("bench", help="benchmark on fresh simulator seeds")
    b.add_argument("--models", type=Path, nargs="+", default=None,
                   help="model files (default: models/defects_fp32.onnx and models/defects.onnx)")
    b.add_argument("--per-code", type=int, default=60, help="masks per defect code (default 60)")
    b.add_argument("--clean", type=int, default=200, help="clean masks (default 200)")
    b.add_argument("--novel", type=int, default=30, help="masks per never-trained defect kind (default 30)")
    b.add_argument("--cache", type=Path, default=None, help="keep / reuse the rendered masks here")
    b.add_argument("--seed", type=int, default=None, help="first seed (default: the bench range)")
    b.add_argument("--pipeline", type=int, default=0, metavar="N",
                   help="also N camera frames per code (+2N clean) through the inspection pipeline's crop")
    b.set_defaults(func=_bench)

    v = sub.add_parser("eval", help="evaluate on the real image sets (honest recall / precision)")
    v.add_argument("--realdata", type=Path, default=Path("../shared/realdata"))
    v.add_argument("--model", type=Path, default=None)
    v.set_defaults(func=_eval)

    i = sub.add_parser("info", help="show a model file's metadata and sha256")
    i.add_argument("model", type=Path, nargs="?", default=None)
    i.set_defaults(func=_info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _threshold_pipeline_arg(parser) -> None:
    """``--threshold-pipeline`` of both ``train`` and ``package`` (they build the same package)."""
    parser.add_argument("--threshold-pipeline", type=int, default=0, metavar="N",
                        help="also pick the thresholds on N clean camera frames through the pipeline "
                             "(default 0)")


def _train(args) -> int:
    import functools

    from qc_station.training.build import build
    from qc_station.training.config import TrainConfig

    cfg = TrainConfig(seed=args.seed, threads=args.threads, workers=args.workers, exclude=tuple(args.exclude))
    if args.masks:
        cfg.n_masks = args.masks
    if args.epochs:
        cfg.epochs = args.epochs
    if args.pipeline_masks is not None:
        cfg.pipeline_masks = args.pipeline_masks
    if args.mine_pipeline is not None:
        cfg.mine_pipeline_masks = args.mine_pipeline
    if args.init:
        cfg.init_weights = args.init
    if args.lr:
        cfg.lr = args.lr
    if args.pos_weight:
        cfg.pos_weight = args.pos_weight
    if args.center_margin is not None:
        cfg.center_margin_cells = args.center_margin
    log = build(args.out, cfg, args.version, echo=functools.partial(print, flush=True),
                cache_dir=args.cache, n_thr_pipeline=args.threshold_pipeline)
    print(f"trained in {log['train_s']:.0f} s; wrote {args.out / 'defects.onnx'} (int8) and "
          f"{args.out / 'defects_fp32.onnx'}")
    return 0


def _package(args) -> int:
    import functools

    from qc_station.training.build import build
    from qc_station.training.config import TrainConfig

    build(args.out, TrainConfig(), args.version, echo=functools.partial(print, flush=True),
          weights=args.weights, n_thr_pipeline=args.threshold_pipeline)
    print(f"wrote {args.out / 'defects.onnx'} (int8) and {args.out / 'defects_fp32.onnx'}")
    return 0


def _export(args) -> int:
    import numpy as np
    import torch

    from qc_station.training import export as ex
    from qc_station.training.net import DefectNet

    net = DefectNet()
    net.load_state_dict(torch.load(args.weights, map_location="cpu"))
    ex.export_onnx(net, args.out)
    diff = ex.parity(net, args.out, np.random.default_rng(0).random((2, 3, 256, 384), np.float32))
    print(f"wrote {args.out}; parity torch vs ONNX Runtime: max abs diff {diff:.2e}")
    return 0 if diff < 1e-4 else 1


def _quantize(args) -> int:
    from qc_station.training import export as ex
    from qc_station.training.build import calib_tiles
    from qc_station.training.train import VAL_SEED_BASE

    ex.quantize_int8(args.fp32, args.out, calib_tiles(args.calib_masks, VAL_SEED_BASE + 90_000))
    kb_int8, kb_fp32 = args.out.stat().st_size / 1024, args.fp32.stat().st_size / 1024
    print(f"wrote {args.out} ({kb_int8:.0f} KB; fp32 {kb_fp32:.0f} KB)")
    return 0


def _bench(args) -> int:
    import os

    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    from qc_station.training.bench_defects import BENCH_SEED_BASE, evaluate, make_cases, report
    from qc_station.vision.defects import DEFAULT_MODEL_PATH

    models = args.models or [DEFAULT_MODEL_PATH.with_name("defects_fp32.onnx"), DEFAULT_MODEL_PATH]
    seed = BENCH_SEED_BASE if args.seed is None else args.seed
    cases = make_cases(args.per_code, args.clean, args.novel, seed, cache_dir=args.cache)
    if cases:  # --per-code 0 --clean 0 --novel 0 --pipeline N: the end-to-end part only
        print(f"{len(cases)} fresh simulator masks (seeds from {seed}); one thread per model")
        report([evaluate(m, cases) for m in models])
    if args.pipeline:
        from qc_station.errors import QCError
        from qc_station.training.bench_defects import make_pipeline_cases

        try:
            pcases = make_pipeline_cases(args.pipeline, 2 * args.pipeline)
        except (QCError, ImportError) as exc:
            print(f"end-to-end part skipped: the inspection pipeline is not usable here ({exc})")
            return 0
        print(f"\nend to end: {len(pcases)} camera frames through the inspection pipeline's crop")
        report([evaluate(m, pcases) for m in models])
    return 0


def bench_defaults(model: str | None = None) -> int:
    """``qc-station bench --defects``: the default benchmark (fp32 + int8, or the given model)."""
    args = argparse.Namespace(models=[Path(model)] if model else None, per_code=60, clean=200, novel=30,
                              seed=None, cache=None, pipeline=0)
    return _bench(args)


def _eval(args) -> int:
    from qc_station.training.realeval import evaluate_all

    evaluate_all(args.realdata, args.model)
    return 0


def _info(args) -> int:
    from qc_station.vision.defects import DefectModel

    m = DefectModel.load(args.model)
    print(f"file       {m.path}")
    print(f"sha256     {m.sha256}")
    print(f"version    {m.version}")
    print(f"classes    {', '.join(m.classes)}")
    print(f"anomaly threshold {m.anomaly_threshold:.4f}; probability thresholds {m.probability_thresholds}")
    print(f"fusion weights {m.fusion_weights or 'none'} (evidence = logit + weight x self-similarity)")
    for k, v in sorted(m.metadata.items()):
        if k not in ("version", "classes", "anomaly_threshold", "probability_threshold",
                     "probability_thresholds"):
            print(f"  {k}: {v}")
    return 0
