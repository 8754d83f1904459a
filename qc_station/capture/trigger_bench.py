"""How well does the placement trigger count masks on simulated trays? Prints the figures.

    python -m qc_station.capture.trigger_bench --placements 5 --seed 1

For each tray colour, the simulator plays ``--placements`` cycles (empty tray, hands laying a
mask, the mask still, hands taking it away). A correct trigger fires exactly once per
placement, on a frame where the mask lies still. Also prints the trigger's time per frame.
"""

from __future__ import annotations

import argparse
import time

from qc_station.capture.sim_source import SimSource
from qc_station.capture.triggers import PlacementTrigger

TRAYS = ("dark_grey", "black", "green", "light_grey")


def run(placements: int, seed: int, *, empty: int = 5, hands: int = 4, still: int = 15) -> dict:
    """Play the trays and count; returns the totals (also printed per tray)."""
    totals = {"placements": 0, "triggers": 0, "wrong": 0}
    update_ms: list[float] = []
    for i, tray in enumerate(TRAYS):
        src = SimSource(mode="tray", seed=seed * 100 + i, tray=tray, empty_frames=empty, hands_frames=hands,
                        still_frames=still, unusable_rates={})
        trigger = PlacementTrigger()
        fired: list[tuple[int, str]] = []
        with src:
            for _ in range(placements * (empty + 2 * hands + still)):
                frame = src.read()
                t0 = time.perf_counter()
                event = trigger.update(frame)
                update_ms.append((time.perf_counter() - t0) * 1000)
                if event is not None:
                    fired.append((frame.metadata["sim_placement"], frame.metadata["sim_phase"]))
        wrong = sum(phase != "placed" for _, phase in fired) + len(fired) - len({p for p, _ in fired})
        print(f"{tray:<11} placements {placements}  triggers {len(fired)}  wrong {wrong}")
        totals["placements"] += placements
        totals["triggers"] += len(fired)
        totals["wrong"] += wrong
    update_ms.sort()
    totals["update_ms_median"] = update_ms[len(update_ms) // 2]
    totals["update_ms_p95"] = update_ms[int(len(update_ms) * 0.95)]
    print(f"total: placements {totals['placements']}  triggers {totals['triggers']}  "
          f"wrong {totals['wrong']}  "
          f"update ms median {totals['update_ms_median']:.2f}  p95 {totals['update_ms_p95']:.2f}")
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--placements", type=int, default=5, help="placements per tray colour")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    totals = run(args.placements, args.seed)
    ok = totals["triggers"] == totals["placements"] and totals["wrong"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
