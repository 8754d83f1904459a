"""Train the defect network from simulator renders (reproducible: one seed drives everything)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qc_station.training.data import augment, cell_targets, cut_patches, render
from qc_station.training.net import CLASSES, DefectNet, build_net

#: Seeds of training renders start here; the benchmark uses BENCH_SEED_BASE and up (disjoint).
TRAIN_SEED_BASE = 1_000_000
VAL_SEED_BASE = 5_000_000


@dataclass
class TrainConfig:
    seed: int = 0
    n_masks: int = 420  # rendered training masks (about 15% clean)
    clean_fraction: float = 0.15
    patch_px: int = 128
    patches_random: int = 12  # random patches per mask
    patches_per_defect: int = 5
    epochs: int = 10
    patches_per_epoch: int = 4096  # a random subset of the bank each epoch (fresh augmentation)
    batch: int = 48
    lr: float = 3e-3
    pos_weight: float = 3.0
    threads: int = 2
    # Loss only on cells at least this many cells from the patch edge: edge cells see the zero
    # padding of a small patch, which never happens inside a full crop at run time.
    center_margin_cells: int = 1
    init_weights: str | None = None  # continue from saved weights (fine-tuning stage)
    exclude: tuple[str, ...] = ()  # defect kinds left out (anomaly experiment)
    log: list[str] = field(default_factory=list)


def defect_mix(rng: np.random.Generator, cfg: TrainConfig) -> tuple[str, ...]:
    """The defects to render on one training mask: none, or one to three distinct codes."""
    if rng.random() < cfg.clean_fraction:
        return ()
    codes = [c for c in CLASSES if c not in cfg.exclude]
    k = int(rng.choice([1, 1, 2, 2, 3]))
    return tuple(rng.choice(codes, size=min(k, len(codes)), replace=False).tolist())


def build_bank(cfg: TrainConfig, echo=print) -> tuple[np.ndarray, np.ndarray]:
    """Render the training masks and cut the patch bank (N x S x S x 3, N x C x S x S)."""
    rng = np.random.default_rng(cfg.seed)
    ims, labs = [], []
    t0 = time.perf_counter()
    for i in range(cfg.n_masks):
        r = render(TRAIN_SEED_BASE + cfg.seed * 100_000 + i, defect_mix(rng, cfg))
        a, b = cut_patches(r, rng, cfg.patch_px, cfg.patches_random, cfg.patches_per_defect)
        if cfg.exclude:  # a left-out kind must not appear as a positive
            b = [np.where(np.array([c in cfg.exclude for c in CLASSES])[:, None, None], 0, x) for x in b]
        ims += a
        labs += b
        if (i + 1) % 100 == 0:
            echo(f"  rendered {i + 1}/{cfg.n_masks} masks ({time.perf_counter() - t0:.0f} s)")
    return np.stack(ims), np.stack(labs)


def _bank_key(cfg: TrainConfig) -> str:
    from qc_station.training.data import sim_backend

    d = config_dict(cfg)
    fields = ("seed", "n_masks", "clean_fraction", "patch_px", "patches_random", "patches_per_defect",
              "exclude")
    raw = json.dumps([sim_backend()[2], *(d[k] for k in fields)])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def load_or_build_bank(cfg: TrainConfig, cache_dir: Path | None, echo=print) -> tuple[np.ndarray, np.ndarray]:
    """The patch bank, from ``cache_dir`` when an identical one was rendered before.

    The cache only saves re-rendering while iterating; the key covers every setting that shapes
    the bank (delete the cache when the simulator changes).
    """
    if cache_dir is None:
        return build_bank(cfg, echo)
    path = Path(cache_dir) / f"bank-{_bank_key(cfg)}.npz"
    if path.exists():
        echo(f"patch bank from cache {path}")
        with np.load(path) as z:
            return z["images"], z["labels"]
    images, labels = build_bank(cfg, echo)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=images, labels=labels)
    return images, labels


def train(cfg: TrainConfig, echo=print, cache_dir: Path | None = None) -> DefectNet:
    """Render, then train; returns the network in eval mode."""
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    images, labels = load_or_build_bank(cfg, cache_dir, echo)
    echo(f"patch bank: {len(images)} patches of {cfg.patch_px} px, positives per class "
         f"{[int(labels[:, c].any(axis=(1, 2)).sum()) for c in range(len(CLASSES))]}")
    net = build_net(cfg.seed)
    if cfg.init_weights:
        net.load_state_dict(torch.load(cfg.init_weights, map_location="cpu"))
        echo(f"starting from {cfg.init_weights}")
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps_per_epoch = min(len(images), cfg.patches_per_epoch) // cfg.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    bce = nn.BCEWithLogitsLoss(reduction="none", pos_weight=torch.full((len(CLASSES), 1, 1), cfg.pos_weight))
    rng = np.random.default_rng(cfg.seed + 1)
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        net.train()
        order = rng.permutation(len(images))
        total = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * cfg.batch : (s + 1) * cfg.batch]
            xs, ts, ws = [], [], []
            for i in idx:
                im, lab = augment(images[i], labels[i], rng)
                t, w = cell_targets(lab)
                xs.append(im.transpose(2, 0, 1))
                ts.append(t)
                ws.append(w)
            x = torch.from_numpy(np.stack(xs).astype(np.float32) / 255.0)
            t = torch.from_numpy(np.stack(ts))
            w = torch.from_numpy(np.stack(ws))
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
        elapsed = time.perf_counter() - t0
        msg = f"epoch {epoch + 1}/{cfg.epochs}: loss {total / steps_per_epoch:.4f} ({elapsed:.0f} s)"
        cfg.log.append(msg)
        echo(msg)
    net.eval()
    return net


def config_dict(cfg: TrainConfig) -> dict:
    """The config as plain data (for the model metadata), without the log."""
    d = asdict(cfg)
    d.pop("log")
    d["exclude"] = list(cfg.exclude)
    return d
