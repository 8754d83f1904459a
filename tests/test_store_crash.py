"""kill -9 during a burst of inspections: every acknowledged result survives, the file is sound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import pytest

from qc_station.store import Store

REPO = Path(__file__).resolve().parents[1]

WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from station_factories import image, result
    from qc_station.store import ImagePolicy, Store

    store = Store(sys.argv[1], policy=ImagePolicy(min_free_mb=0))
    store.ensure_station("st-1")
    store.open_batch("st-1", "CRASH", spec_name="s", spec_version=1, spec_id="s@1")
    frame = image(640, 360, 1)
    verdicts = ["pass", "pass", "fail", "pass", "unusable"]
    i = 0
    while True:  # until killed
        v = verdicts[i % len(verdicts)]
        codes = {"fail": ("stain",), "unusable": ("blur",)}.get(v, ())
        rec = store.record_inspection(
            result(v, *codes), station_id="st-1", frame_bgr=frame, annotated_bgr=frame
        )
        print(rec.id, rec.uid, flush=True)  # the acknowledgement: only after the durable commit
        i += 1
    """
)


@pytest.mark.slow
def test_kill_9_mid_burst_loses_no_acknowledged_result(tmp_path: Path) -> None:
    data = tmp_path / "data"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(data), str(REPO / "tests")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
    )
    acked: dict[int, str] = {}
    deadline = time.monotonic() + 60
    try:
        while len(acked) < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            rec_id, uid = line.split()
            acked[int(rec_id)] = uid
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-burst: the writer is busy with the next one
        proc.wait(10)
        err = proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 40, f"writer too slow or failed: {err[-2000:]}"

    store = Store(data)  # opens cleanly (WAL recovery, migrations are a no-op)
    try:
        assert store.integrity_check() == "ok"
        assert store.query("PRAGMA foreign_key_check") == []
        stored = {r["id"]: r["uid"] for r in store.query("SELECT id, uid FROM inspections")}
        for rec_id, uid in acked.items():
            assert stored.get(rec_id) == uid, f"acknowledged inspection {rec_id} lost"
        assert len(stored) >= len(acked)  # one more may have committed before its ack was read
        for rec_id in acked:
            for ref in store.get_inspection(rec_id).images:  # every referenced image is complete
                img = cv2.imread(str(store.image_file(rec_id, ref.kind)))
                assert img is not None and img.shape[0] > 0, (rec_id, ref.kind)
        assert not list((data / "images").rglob(".*.tmp"))  # half-written files were swept on open
    finally:
        store.close()
