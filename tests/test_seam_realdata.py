"""The stitch detector on real seam close-ups (StitchingNet samples, CC BY-NC 4.0, evaluation only).

``evaluate_stitchingnet`` runs :func:`analyze_stitch_patch` on the Normal and Skipped-stitch images
and reports how often a periodic stitch line is found, the pitch, whether the pitch agrees between
the two images of one fabric (same machine setting), and how often a skipped stitch is flagged.
Run ``python tests/test_seam_realdata.py`` for the table. The labels carry no stitch length and
no mm scale, so pitches are in pixels; the README says the stitches have about the size the
station sees at 0.2 mm/px.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest

from qc_station.vision.seam_patch import analyze_stitch_patch

MM_PER_PX = 0.2  # nominal only: pitches are reported in pixels


@dataclass(frozen=True)
class PatchRow:
    image: str
    fabric: str
    label: str  # "Normal" or "Skipped stitch"
    found: bool
    pitch_px: float | None
    longest_gap_px: float
    flagged: bool  # a gap in the thread longer than 2 stitches (what the mask pipeline uses)
    long_stitch: bool  # needle holes > 1.7 stitches apart (floating stitch heuristic)


def evaluate_stitchingnet(folder: Path) -> list[PatchRow]:
    """Run the patch detector on every Normal / Skipped-stitch image listed in labels.csv."""
    rows = []
    with open(folder / "labels.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["class_id"] not in ("0", "1"):
                continue
            img = cv2.imread(str(folder / r["image"]))
            res = analyze_stitch_patch(img, mm_per_px=MM_PER_PX)
            pitch = res.stitch_length_mm / MM_PER_PX if res.stitch_length_mm else None
            rows.append(PatchRow(r["image"], r["fabric"], r["class_name"], res.found, pitch,
                                 res.longest_gap_mm / MM_PER_PX, res.skipped, res.long_stitch))
    return rows


def summary(rows: list[PatchRow]) -> dict[str, float]:
    normal = [r for r in rows if r.label == "Normal"]
    skipped = [r for r in rows if r.label != "Normal"]
    by_fabric: dict[str, list[PatchRow]] = {}
    for r in rows:
        by_fabric.setdefault(r.fabric, []).append(r)
    pairs = [v for v in by_fabric.values() if len(v) == 2 and all(x.pitch_px for x in v)]
    agree = [abs(a.pitch_px - b.pitch_px) <= 0.1 * max(a.pitch_px, b.pitch_px) for a, b in pairs]
    return {
        "images": len(rows),
        "line_found": sum(r.found for r in rows) / len(rows),
        "pitch_pairs_agree": sum(agree) / max(1, len(pairs)),
        "skip_recall": sum(r.flagged for r in skipped) / max(1, len(skipped)),
        "false_skip_rate": sum(r.flagged for r in normal) / max(1, len(normal)),
        "long_stitch_recall": sum(r.long_stitch for r in skipped) / max(1, len(skipped)),
        "long_stitch_false_rate": sum(r.long_stitch for r in normal) / max(1, len(normal)),
    }


@pytest.fixture(scope="module")
def stitchingnet(shared_dir) -> list[PatchRow]:
    folder = shared_dir / "realdata" / "stitchingnet_samples"
    if not (folder / "labels.csv").exists():
        pytest.skip("stitchingnet_samples not available")
    return evaluate_stitchingnet(folder)


def test_real_seams_line_found_and_no_false_skips(stitchingnet):
    s = summary(stitchingnet)
    # measured 2026-11: the line is found on nearly all of them; skipped stitches on these
    # close-ups are long floating stitches (thread present), which a gap detector does not see
    assert s["line_found"] >= 0.85, s
    assert s["false_skip_rate"] <= 0.1, s


if __name__ == "__main__":
    import sys

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared"
    rows = evaluate_stitchingnet(root / "realdata" / "stitchingnet_samples")
    for r in rows:
        pitch = f"{r.pitch_px:5.1f}" if r.pitch_px else "  -  "
        print(f"{r.image:28s} {r.label:15s} found={r.found!s:5s} pitch_px={pitch} "
              f"gap_px={r.longest_gap_px:5.1f} flagged={r.flagged} long_stitch={r.long_stitch}")
    print(summary(rows))
