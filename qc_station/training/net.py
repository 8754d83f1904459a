"""The defect network: a small fully convolutional CNN over full-resolution mask crops.

One output cell per 16 x 16 px (3.2 mm at 0.2 mm/px); each cell sees a ~110 px (22 mm) window,
so running it on the whole crop is the same as sliding overlapping ~110 px tiles with a 16 px
stride, without recomputing the overlap. Outputs per cell: one logit per defect code
(multi-label, sigmoid) and a feature vector (the anomaly model's embedding).
"""

from __future__ import annotations

import torch
from torch import nn

#: Output classes, in channel order (all are codes of ``qc_station.results.DefectCode``).
CLASSES = ("stain", "hole", "open_seam", "skipped_stitch")
CELL_PX = 16
FEATURE_DIM = 96
#: Channel widths of the five body stages (~0.9 GMAC per 1000 x 576 crop, ~190k parameters).
WIDTH = (16, 32, 48, 64, 96)


def _block(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class DefectNet(nn.Module):
    """Input: BGR float in [0, 1], N x 3 x H x W (H, W multiples of 16).

    Returns ``(logits N x C x H/16 x W/16, features N x FEATURE_DIM x H/16 x W/16)``.
    """

    def __init__(self, n_classes: int = len(CLASSES), width: tuple[int, ...] = WIDTH):
        super().__init__()
        c1, c2, c3, c4, c5 = width
        self.body = nn.Sequential(
            _block(3, c1, 2),  # /2
            _block(c1, c2, 2),  # /4
            _block(c2, c3, 2),  # /8
            _block(c3, c4),
            _block(c4, c5, 2),  # /16
            _block(c5, FEATURE_DIM, dilation=2),  # context: receptive field ~110 px
        )
        self.head = nn.Conv2d(FEATURE_DIM, n_classes, 1)
        # Rare positives: start the logits low so early training is not swamped by background.
        nn.init.constant_(self.head.bias, -4.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Centre the input inside the graph so the runtime only has to scale to [0, 1].
        f = self.body(x - 0.5)
        return self.head(f), f


def build_net(seed: int = 0) -> DefectNet:
    """A freshly initialised network, deterministic for a given seed."""
    torch.manual_seed(seed)
    return DefectNet()
