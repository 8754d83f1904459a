"""``qc-station bench-store``: sustained inspections/s into the store, and end-to-end latency.

Phase 1 renders a few simulator frames and inspects them with the real pipeline (the samples).
Phase 2 replays those results with their images into a real store at ``--rate`` for
``--seconds``, serving the API on loopback with one SSE client listening, and counts losses.
Phase 3 runs the real station loop (simulated camera -> pipeline -> store -> SSE) and compares
frame -> SSE-delivered latency with the pipeline's own time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

EPILOG = """\
examples:
  qc-station bench-store                      # 10 inspections/s for 600 s (the issue's target)
  qc-station bench-store --seconds 60         # a quick run
  qc-station bench-store --rate 20 --seconds 30 --e2e 5 --data /tmp/bench

Prints the achieved rate, store latency percentiles, losses (must be 0), SSE delivery latency,
and the end-to-end frame -> stored -> delivered latency against the pipeline time.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-store",
        help="benchmark the store + live events: sustained rate, latency, losses",
        description="Store benchmark: replays real pipeline results with images into a real store at "
        "a fixed rate with a live SSE client, then measures the station's end-to-end latency.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=600.0,
                   help="duration of the sustained phase (default 600)")
    p.add_argument("--rate", type=float, default=10.0, help="inspections per second (default 10)")
    p.add_argument("--samples", type=int, default=6, help="simulator frames rendered + inspected (default 6)")
    p.add_argument("--e2e", type=int, default=10, help="frames through the live station loop (0: skip)")
    p.add_argument("--data", type=Path, default=None, help="store folder (default: a temporary one)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--mix", default="pass=0.80,fail=0.15,unusable=0.05",
                   help="verdict shares of the replayed inspections "
                   "(default pass=0.80,fail=0.15,unusable=0.05)")
    p.add_argument("--writers", type=int, default=2, help="storing threads (default 2)")
    p.add_argument("--calibration", default="sim",
                   help="station.json for the pipeline (default: the bundled simulator calibration)")
    p.set_defaults(func=_run)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``; nan when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def fmt(values: list[float]) -> str:
    return (f"p50 {pct(values, 50):7.1f}  p95 {pct(values, 95):7.1f}  p99 {pct(values, 99):7.1f}  "
            f"max {max(values, default=float('nan')):7.1f} ms")


@dataclass
class Sample:
    frame_bgr: object
    annotated_bgr: object
    result: object
    inspect_ms: float


@dataclass
class SseClient:
    """Listens to /api/events in a thread; notes when each inspection id arrived."""

    url: str
    received: dict[int, float] = field(default_factory=dict)
    payloads: dict[int, dict] = field(default_factory=dict)
    keep_payload: bool = False
    connected: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self._run, daemon=True, name="bench-sse")
        t.start()
        return t

    def _run(self) -> None:
        import httpx

        try:
            with httpx.stream("GET", self.url + "/api/events", timeout=httpx.Timeout(5, read=None)) as r:
                self.connected.set()
                ev_id, kind = None, None
                for line in r.iter_lines():
                    if line.startswith("id:"):
                        ev_id = int(line[3:])
                    elif line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:") and kind == "inspection" and ev_id is not None:
                        self.received[ev_id] = time.time()
                        if self.keep_payload:
                            self.payloads[ev_id] = json.loads(line[5:])
                    elif line == "":
                        ev_id, kind = None, None
        except Exception as exc:  # the server closing the stream at the end is normal
            self.error = f"{type(exc).__name__}: {exc}"


def make_samples(n: int, seed: int, calibration: str = "sim") -> list[Sample]:
    """Render ``n`` simulator frames and inspect them with the real pipeline."""
    from qc_station.capture.sim_source import SimSource
    from qc_station.config import parse_config
    from qc_station.station import load_parts
    from qc_station.vision.pipeline import Inspector

    spec, cal, model, _ = load_parts(parse_config({"calibration": calibration}))
    inspector = Inspector(cal, spec, model=model)
    samples = []
    # more unusable frames than the demo mix, so a few samples cover every kind of record
    with SimSource(mode="conveyor", seed=seed, unusable_rates={"blur": 0.15, "exposure": 0.15}) as source:
        for _ in range(n):
            frame = source.read(timeout_s=30)
            t0 = time.perf_counter()
            result = inspector.inspect(frame.image_bgr, image_name=f"sim-{frame.seq}")
            inspect_ms = (time.perf_counter() - t0) * 1000
            annotate = getattr(inspector, "annotate", None)
            annotated = annotate(frame.image_bgr, result) if annotate else None
            samples.append(Sample(frame.image_bgr, annotated, result, inspect_ms))
    return samples


def replay_plan(samples: list[Sample], shares: dict[str, float], length: int = 100) -> list[int]:
    """Sample indices in a fixed order whose verdicts follow ``shares`` (e.g. 80% pass)."""
    by_verdict: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_verdict.setdefault(s.result.verdict, []).append(i)
    plan: list[int] = []
    acc = dict.fromkeys(shares, 0.0)
    for k in range(length):
        for v in shares:  # largest remainder: deterministic and evenly spread
            acc[v] += shares[v]
        v = max(acc, key=acc.get)
        acc[v] -= 1.0
        pool = by_verdict.get(v) or by_verdict.get("fail") or list(range(len(samples)))
        plan.append(pool[k % len(pool)])
    return plan


def sustained(samples: list[Sample], data: Path, seconds: float, rate: float, *, shares: dict[str, float],
              writers: int = 2) -> dict:
    """Phase 2: ``rate`` inspections/s for ``seconds`` into a store with a live SSE listener.

    A scheduler hands each inspection to ``writers`` storing threads at its due time (as a
    station's capture loop would); latencies are measured from that due time, so queueing counts.
    """
    import queue

    from qc_station.api import create_app
    from qc_station.api.events import LiveEvent
    from qc_station.api.server import ServerThread
    from qc_station.config import parse_config
    from qc_station.store import FrameInfo, ImagePolicy, Store

    config = parse_config({"data_dir": str(data), "station": {"id": "bench"}})
    store = Store(data, policy=ImagePolicy(min_free_mb=200))
    app = create_app(config, store)
    events = app.state.ctx.events
    spec = app.state.ctx.spec
    if store.open_batch_of("bench") is None:
        store.open_batch("bench", f"BENCH-{int(time.time())}", spec_name=spec.name, spec_version=spec.version,
                         spec_id=spec.spec_id)
    n = int(seconds * rate)
    plan = replay_plan(samples, shares)
    jobs: queue.Queue = queue.Queue()
    store_ms: list[float] = []
    wait_ms: list[float] = []
    sent: dict[int, float] = {}
    failures: list[str] = []
    verdicts: dict[str, int] = {}
    lock = threading.Lock()
    last_stored = [0.0]

    def writer() -> None:
        while (job := jobs.get()) is not None:
            i, t_due = job
            s = samples[plan[i % len(plan)]]
            t_start = time.time()
            try:
                rec = store.record_inspection(
                    s.result, station_id="bench", frame=FrameInfo(seq=i, timestamp=t_due, source="bench"),
                    frame_bgr=s.frame_bgr, annotated_bgr=s.annotated_bgr, trigger="bench",
                )
            except Exception as exc:  # counted as a loss, reported below
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            t_done = time.time()
            events.publish(LiveEvent("inspection", {"id": rec.id, "verdict": rec.verdict}, id=rec.id))
            with lock:
                store_ms.append((t_done - t_due) * 1000)
                wait_ms.append((t_start - t_due) * 1000)
                sent[rec.id] = t_due
                verdicts[rec.verdict] = verdicts.get(rec.verdict, 0) + 1
                last_stored[0] = time.monotonic()

    with ServerThread(app) as srv:
        client = SseClient(srv.url)
        client.start()
        client.connected.wait(10)
        deadline = time.monotonic() + 5
        while events.subscriber_count == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        threads = [threading.Thread(target=writer, daemon=True) for _ in range(writers)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        t0_wall = time.time()
        for i in range(n):
            target = t0 + i / rate
            now = time.monotonic()
            if target > now:
                time.sleep(target - now)
            jobs.put((i, t0_wall + i / rate))
            if i and i % int(rate * 60) == 0:
                print(f"  ... {i}/{n} due, {len(sent)} stored, {len(client.received)} delivered, "
                      f"{jobs.qsize()} waiting", flush=True)
        for _ in threads:
            jobs.put(None)
        for t in threads:
            t.join()
        elapsed = last_stored[0] - t0
        wait_until = time.monotonic() + 10
        while len(client.received) < len(sent) and time.monotonic() < wait_until:
            time.sleep(0.05)
    rows = store.query("SELECT COUNT(*) FROM inspections WHERE station_id = 'bench'")[0][0]
    missing_files = sum(
        1 for r in store.query("SELECT path FROM images") if not store.images.path(r["path"]).is_file()
    )
    stored_ids = {r["id"] for r in store.query("SELECT id FROM inspections")}
    image_bytes = store.query("SELECT COALESCE(SUM(bytes), 0) FROM images")[0][0]
    integrity = store.integrity_check()
    store.close()
    e2e = [(client.received[i] - t) * 1000 for i, t in sent.items() if i in client.received]
    return {
        "planned": n, "elapsed_s": elapsed, "achieved_rate": len(sent) / elapsed if elapsed > 0 else 0.0,
        "store_ms": store_ms, "wait_ms": wait_ms, "e2e_ms": e2e, "verdicts": verdicts,
        "lost_store": n - len(sent), "lost_rows": len(sent) - len(stored_ids & set(sent)),
        "lost_sse": len(set(sent) - set(client.received)), "missing_files": missing_files, "rows": rows,
        "failures": failures[:3], "image_mb": image_bytes / 2**20, "integrity": integrity,
        "sse_error": client.error, "writers": writers,
    }


def end_to_end(frames: int, data: Path, seed: int, calibration: str = "sim") -> dict:
    """Phase 3: the real station loop (sim camera -> pipeline -> store -> SSE), frame -> delivered."""
    from qc_station.api import create_app
    from qc_station.api.server import ServerThread
    from qc_station.config import parse_config
    from qc_station.station import build_station, image_policy
    from qc_station.store import Store

    config = parse_config({"data_dir": str(data), "station": {"id": "bench-e2e"},
                           "capture": {"type": "sim", "mode": "conveyor", "seed": seed},
                           "trigger": {"mode": "every_frame"}, "calibration": calibration})
    store = Store(data, policy=image_policy(config))
    station = build_station(config, store)
    app = create_app(config, store, station)
    with ServerThread(app) as srv:
        client = SseClient(srv.url, keep_payload=True)
        client.start()
        client.connected.wait(10)
        while station.events.subscriber_count == 0:
            time.sleep(0.01)
        station.start()
        deadline = time.monotonic() + 60 + frames * 10
        while len(client.received) < frames and time.monotonic() < deadline:
            time.sleep(0.05)
        station.stop()
    store.close()
    rows = []
    for i, t_recv in client.received.items():
        p = client.payloads[i]
        rows.append({
            "e2e_ms": (t_recv - p["frame"]["timestamp"]) * 1000,
            "inspect_ms": p["station_inspect_ms"],
            "annotate_ms": p["station_annotate_ms"],
            "store_ms": p["station_store_ms"],
            "verdict": p["verdict"],
        })
    return {"rows": rows}


def parse_mix(text: str) -> dict[str, float]:
    """``pass=0.8,fail=0.15,unusable=0.05`` -> shares summing to 1."""
    from qc_station.errors import ConfigError

    shares: dict[str, float] = {}
    try:
        for part in text.split(","):
            key, value = part.split("=")
            if key.strip() not in ("pass", "fail", "unusable"):
                raise ValueError(key)
            shares[key.strip()] = float(value)
    except ValueError:
        raise ConfigError(f"--mix {text!r}: expected e.g. pass=0.8,fail=0.15,unusable=0.05") from None
    total = sum(shares.values())
    if total <= 0 or min(shares.values()) < 0:
        raise ConfigError(f"--mix {text!r}: shares must be >= 0 and not all 0")
    return {k: v / total for k, v in shares.items()}


def _run(args) -> int:
    from qc_station.errors import ConfigError

    if args.seconds <= 0 or args.rate <= 0 or args.writers < 1:
        raise ConfigError("--seconds, --rate and --writers must be > 0")
    parse_mix(args.mix)
    keep = args.data is not None
    base = args.data or Path(tempfile.mkdtemp(prefix="qc-bench-store-"))
    print(f"bench-store: {args.rate:g} inspections/s for {args.seconds:g} s into {base}", flush=True)
    print(f"phase 1: rendering {args.samples} simulator frames, inspecting them with the real pipeline",
          flush=True)
    samples = make_samples(args.samples, args.seed, args.calibration)
    verdicts = [s.result.verdict for s in samples]
    print(f"  samples: {', '.join(verdicts)}; inspect {fmt([s.inspect_ms for s in samples])}", flush=True)
    shares = parse_mix(args.mix)
    print(f"phase 2: sustained store + SSE ({args.writers} storing threads, mix {args.mix})", flush=True)
    r = sustained(samples, base / "sustained", args.seconds, args.rate, shares=shares, writers=args.writers)
    print(f"  inspections: {r['planned']} due, {r['rows']} rows stored in {r['elapsed_s']:.1f} s "
          f"-> {r['achieved_rate']:.2f} /s achieved (target {args.rate:g}); verdicts {r['verdicts']}")
    print(f"  due -> durably stored (images + row): {fmt(r['store_ms'])}")
    print(f"  due -> SSE delivered:                 {fmt(r['e2e_ms'])}")
    print(f"  queueing before a writer took it:     {fmt(r['wait_ms'])}")
    print(f"  losses: not stored {r['lost_store']}, rows missing {r['lost_rows']}, "
          f"not delivered {r['lost_sse']}, image files missing {r['missing_files']}")
    print(f"  images on disk: {r['image_mb']:.1f} MB ({r['image_mb'] * 1024 / max(1, r['rows']):.0f} kB per "
          f"inspection); integrity_check: {r['integrity']}")
    if r["failures"]:
        print(f"  first failures: {r['failures']}")
    losses = r["lost_store"] + r["lost_rows"] + r["lost_sse"] + r["missing_files"]
    if args.e2e > 0:
        print(f"phase 3: {args.e2e} frames through the live station (sim camera -> pipeline -> store -> SSE)",
              flush=True)
        e = end_to_end(args.e2e, base / "e2e", args.seed + 1, args.calibration)["rows"]
        e2e = [x["e2e_ms"] for x in e]
        pipe = [x["inspect_ms"] for x in e]
        overhead = [x["e2e_ms"] - x["inspect_ms"] for x in e]
        print(f"  pipeline (inspect):           {fmt(pipe)}")
        print(f"  annotate:                     {fmt([x['annotate_ms'] for x in e])}")
        print(f"  store:                        {fmt([x['store_ms'] for x in e])}")
        print(f"  frame -> stored -> delivered: {fmt(e2e)}")
        print(f"  overhead (delivered - inspect): {fmt(overhead)}")
        print(f"  end-to-end / pipeline: {pct(e2e, 50) / pct(pipe, 50):.2f}x on medians, "
              f"{pct(e2e, 95) / pct(pipe, 95):.2f}x on p95 (target <= 1.5x) over {len(e)} frames")
    if not keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    print("result:", "OK, no loss" if losses == 0 else f"LOSSES: {losses}")
    return 0 if losses == 0 else 1
