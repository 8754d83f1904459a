"""The training recipe's settings (no torch here: the CLI reads the defaults for its --help)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    seed: int = 0
    n_masks: int = 640  # rendered training masks (about a quarter clean)
    clean_fraction: float = 0.25
    patch_px: int = 128
    patches_random: int = 16  # random patches per mask
    patches_per_defect: int = 6
    # Masks seen as the station sees them, besides the mask-plane renders: a camera frame
    # (``sim.render_case``) through the inspection pipeline's own crop (camera blur, rectification
    # resampling, the measured mask frame, the tray margin). Same mix of defects.
    pipeline_masks: int = 0
    epochs: int = 40  # one stage: 26.4 min wall on the idle 2-core box, rendering + packaging included
    patches_per_epoch: int = 8192  # a random subset of the bank each epoch (fresh augmentation)
    batch: int = 48
    lr: float = 3e-3
    pos_weight: float = 2.0
    # One torch thread + one augmentation process: on a 2-core box this keeps both cores busy.
    # (Two torch threads next to any other load make OpenMP spin: 8x slower steps, measured.)
    threads: int = 1
    workers: int = 1  # augmentation processes (0: augment in the training process)
    render_procs: int = 2
    # Loss only on cells at least this many cells from the patch edge: edge cells see the zero
    # padding of a small patch, which never happens inside a full crop at run time.
    center_margin_cells: int = 1
    # Hard negatives: at these fractions of training, the net runs on whole clean masks it never
    # trained on and the cells it fires on most become extra (negative) patches.
    mine_masks: int = 96
    mine_at: tuple[float, ...] = (0.3, 0.55, 0.8)
    mine_per_mask: int = 6
    mine_pipeline_masks: int = 0  # clean camera frames through the pipeline, mined as well
    init_weights: str | None = None  # continue from saved weights (fine-tuning stage)
    exclude: tuple[str, ...] = ()  # defect kinds left out (anomaly experiment)
    log: list[str] = field(default_factory=list)
