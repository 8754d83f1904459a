"""Train the defect network from simulator renders (reproducible: one seed drives everything)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qc_station.training.config import TrainConfig
from qc_station.training.data import (
    augment,
    cell_targets,
    cut_patches,
    photometric,
    pipeline_rendered,
    render,
)
from qc_station.training.net import CELL_PX, CLASSES, DefectNet, build_net

#: Seeds of training renders start here; the benchmark uses BENCH_SEED_BASE and up (disjoint).
TRAIN_SEED_BASE = 1_000_000
#: Offsets inside one training seed's block of 100,000 (mask planes start at 0).
PIPELINE_OFFSET = 50_000
MINE_OFFSET = 90_000
MINE_PIPELINE_OFFSET = 95_000
VAL_SEED_BASE = 5_000_000


def defect_mix(rng: np.random.Generator, cfg: TrainConfig) -> tuple[str, ...]:
    """The defects to render on one training mask: none, or one to three distinct codes."""
    if rng.random() < cfg.clean_fraction:
        return ()
    codes = [c for c in CLASSES if c not in cfg.exclude]
    k = int(rng.choice([1, 1, 2, 2, 3]))
    return tuple(rng.choice(codes, size=min(k, len(codes)), replace=False).tolist())


def _render_patches(job: tuple) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One training mask -> its patches (a process-pool task: deterministic from the job alone)."""
    seed, mix, patch_px, n_random, n_per_defect, exclude, through_pipeline = job
    rng = np.random.default_rng(seed)
    r = pipeline_rendered(seed, mix) if through_pipeline else render(seed, mix)
    if r is None:  # the pipeline made no crop of this frame (gated): nothing to learn from
        return [], []
    a, b = cut_patches(r, rng, patch_px, n_random, n_per_defect)
    if exclude:  # a left-out kind must not appear as a positive
        drop = np.array([c in exclude for c in CLASSES])[:, None, None]
        b = [np.where(drop, 0, x).astype(np.uint8) for x in b]
    return a, b


def build_bank(cfg: TrainConfig, echo=print) -> tuple[np.ndarray, np.ndarray]:
    """Render the training masks and cut the patch bank (N x S x S x 3, N x C x S x S)."""
    rng = np.random.default_rng(cfg.seed)
    base = TRAIN_SEED_BASE + cfg.seed * 100_000
    kinds = [(base + i, False) for i in range(cfg.n_masks)]
    kinds += [(base + PIPELINE_OFFSET + i, True) for i in range(cfg.pipeline_masks)]
    jobs = [(s, defect_mix(rng, cfg), cfg.patch_px, cfg.patches_random, cfg.patches_per_defect,
             tuple(cfg.exclude), through) for s, through in kinds]
    ims, labs = [], []
    t0 = time.perf_counter()
    with render_pool(cfg.render_procs) as pool:
        for i, (a, b) in enumerate(pool.imap(_render_patches, jobs, chunksize=4)):
            ims += a
            labs += b
            if (i + 1) % 100 == 0:
                echo(f"  rendered {i + 1}/{len(jobs)} masks ({time.perf_counter() - t0:.0f} s)")
    return np.stack(ims), np.stack(labs)


class _SerialPool:
    def imap(self, fn, jobs, chunksize=1):
        return map(fn, jobs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def render_pool(n: int):
    """``n`` forked worker processes for rendering (``n <= 1``: render in this process)."""
    if n <= 1:
        return _SerialPool()
    import multiprocessing as mp

    return mp.get_context("fork").Pool(n)


def _bank_key(cfg: TrainConfig) -> str:
    from qc_station.training.data import renderer_fingerprint, sim_backend

    d = config_dict(cfg)
    fields = ("seed", "n_masks", "clean_fraction", "patch_px", "patches_random", "patches_per_defect",
              "exclude", "pipeline_masks")
    raw = json.dumps(["bank-v2", sim_backend()[2], renderer_fingerprint(), *(d[k] for k in fields)])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def load_or_build_bank(cfg: TrainConfig, cache_dir: Path | None, echo=print) -> tuple[np.ndarray, np.ndarray]:
    """The patch bank, from ``cache_dir`` when an identical one was rendered before.

    The cache only saves re-rendering while iterating; the key covers every setting that shapes
    the bank and the renderer's source (:func:`renderer_fingerprint`).
    """
    if cache_dir is None:
        return build_bank(cfg, echo)
    path = Path(cache_dir) / f"bank-{_bank_key(cfg)}.npy"
    lpath = path.with_suffix(".labels.npy")
    if path.exists() and lpath.exists():
        echo(f"patch bank from cache {path}")
        return np.load(path), np.load(lpath)
    images, labels = build_bank(cfg, echo)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(lpath, labels)
    np.save(path, images)
    return images, labels


class PatchStream(torch.utils.data.Dataset):
    """Augmented patches keyed by (epoch, index): the same key gives the same sample in any process."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int):
        self.images, self.labels, self.seed = images, labels, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]):
        epoch, i = key
        rng = np.random.default_rng((self.seed, epoch, i))
        im, lab = augment(self.images[i], self.labels[i], rng)
        t, w = cell_targets(lab)
        return torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))), torch.from_numpy(t), \
            torch.from_numpy(w)


def _batches(stream: PatchStream, cfg: TrainConfig, epoch: int, rng: np.random.Generator):
    """The batches of one epoch (a random subset of the bank), through the augmentation workers."""
    order = rng.permutation(len(stream))[: cfg.patches_per_epoch]
    keys = [[(epoch, int(i)) for i in order[s : s + cfg.batch]]
            for s in range(0, len(order) - cfg.batch + 1, cfg.batch)]
    if cfg.workers <= 0:
        return (torch.utils.data.default_collate([stream[k] for k in b]) for b in keys)
    return iter(torch.utils.data.DataLoader(stream, batch_sampler=keys, num_workers=cfg.workers,
                                            multiprocessing_context="fork", prefetch_factor=4))


def _good_crop(job: tuple[int, bool]):
    """One clean render, with lighting / blur / noise / JPEG jitter half the time (pool task)."""
    seed, jitter = job
    crop = render(seed).crop
    rng = np.random.default_rng(seed)
    if jitter and rng.random() < 0.5:
        crop = type(crop)(photometric(crop.image, rng), crop.body, crop.mm_per_px, crop.origin_mm,
                          crop.width_mm, crop.height_mm)
    return crop


def good_crops(n: int, seed: int, jitter: bool, procs: int = 1) -> list:
    """Clean renders of seeds ``seed ...`` (optionally jittered), rendered by ``procs`` processes."""
    with render_pool(procs) as pool:
        return list(pool.imap(_good_crop, [(seed + i, jitter) for i in range(n)], chunksize=4))


def _pipeline_good_crop(seed: int):
    r = pipeline_rendered(seed)
    return None if r is None else r.crop


def pipeline_good_crops(n: int, seed: int, procs: int = 1) -> list:
    """The pipeline's crops of clean camera frames of seeds ``seed ...`` (gated frames left out)."""
    if n <= 0:
        return []
    with render_pool(procs) as pool:
        crops = pool.imap(_pipeline_good_crop, range(seed, seed + n), chunksize=4)
        return [c for c in crops if c is not None]


def mining_crops(cfg: TrainConfig) -> list:
    """Whole clean masks for hard-negative mining (their own seed range, never benchmarked).

    Mask planes, plus ``cfg.mine_pipeline_masks`` camera frames through the pipeline's crop.
    """
    base = TRAIN_SEED_BASE + cfg.seed * 100_000
    return good_crops(cfg.mine_masks, base + MINE_OFFSET, False, cfg.render_procs) + \
        pipeline_good_crops(cfg.mine_pipeline_masks, base + MINE_PIPELINE_OFFSET, cfg.render_procs)


def mine_hard_negatives(net: DefectNet, crops: list, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Patches around the cells of clean masks where the net fires most (labels all zero)."""
    from qc_station.vision.defects import cell_geometry, prepare_input

    s = cfg.patch_px
    ims = []
    net.eval()
    with torch.no_grad():
        for crop in crops:
            logits, _ = net(torch.from_numpy(prepare_input(crop.image, CELL_PX)))
            peak = logits[0].max(0).values.numpy()
            valid, _ = cell_geometry(crop.body, crop.mm_per_px, CELL_PX, peak.shape)
            peak = np.where(valid, peak, -np.inf)
            h, w = crop.image.shape[:2]
            for flat in np.argsort(peak, axis=None)[::-1][: cfg.mine_per_mask]:
                r, c = np.unravel_index(flat, peak.shape)
                if not np.isfinite(peak[r, c]):
                    break
                y0 = int(np.clip(r * CELL_PX + CELL_PX // 2 - s // 2, 0, h - s))
                x0 = int(np.clip(c * CELL_PX + CELL_PX // 2 - s // 2, 0, w - s))
                ims.append(crop.image[y0 : y0 + s, x0 : x0 + s].copy())
    net.train()
    return np.stack(ims), np.zeros((len(ims), len(CLASSES), s, s), np.uint8)


def train(cfg: TrainConfig, echo=print, cache_dir: Path | None = None) -> DefectNet:
    """Render, then train; returns the network in eval mode."""
    torch.use_deterministic_algorithms(True)
    images, labels = load_or_build_bank(cfg, cache_dir, echo)
    echo(f"patch bank: {len(images)} patches of {cfg.patch_px} px, positives per class "
         f"{[int(labels[:, c].any(axis=(1, 2)).sum()) for c in range(len(CLASSES))]}")
    return train_on_bank(cfg, images, labels, mining_crops(cfg) if cfg.mine_at else [], echo)


def train_on_bank(cfg: TrainConfig, images: np.ndarray, labels: np.ndarray, mine_from: list,
                  echo=print) -> DefectNet:
    """The training loop proper (AdamW, one-cycle lr, per-cell BCE, hard-negative rounds)."""
    torch.set_num_threads(cfg.threads)
    net = build_net(cfg.seed)
    if cfg.init_weights:
        net.load_state_dict(torch.load(cfg.init_weights, map_location="cpu"))
        echo(f"starting from {cfg.init_weights}")
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps_per_epoch = min(len(images), cfg.patches_per_epoch) // cfg.batch
    # (+8: a little slack, OneCycleLR raises if it is stepped past its end)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch + 8)
    bce = nn.BCEWithLogitsLoss(reduction="none", pos_weight=torch.full((len(CLASSES), 1, 1), cfg.pos_weight))
    rng = np.random.default_rng(cfg.seed + 1)
    mine_epochs = {round(f * cfg.epochs) for f in cfg.mine_at} if mine_from else set()
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        if epoch in mine_epochs:
            hi, hl = mine_hard_negatives(net, mine_from, cfg)
            images, labels = np.concatenate([images, hi]), np.concatenate([labels, hl])
            echo(f"  mined {len(hi)} hard-negative patches (bank now {len(images)})")
        net.train()
        total, n = 0.0, 0
        for x8, t, w in _batches(PatchStream(images, labels, cfg.seed), cfg, epoch, rng):
            x = x8.float() / 255.0
            if cfg.center_margin_cells:
                m = cfg.center_margin_cells
                keep = torch.zeros_like(w)
                keep[:, :, m:-m, m:-m] = 1
                w = w * keep
            logits, _ = net(x)
            loss = (bce(logits, t) * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            n += 1
        elapsed = time.perf_counter() - t0
        msg = f"epoch {epoch + 1}/{cfg.epochs}: loss {total / max(1, n):.4f} ({elapsed:.0f} s)"
        cfg.log.append(msg)
        echo(msg)
    net.eval()
    return net


def config_dict(cfg: TrainConfig) -> dict:
    """The config as plain data (for the model metadata), without the log."""
    d = asdict(cfg)
    d.pop("log")
    d["exclude"] = list(cfg.exclude)
    d["mine_at"] = list(cfg.mine_at)
    return d
