"""Check a station's Python environment on the Pi itself (run by deploy/install-pi.sh).

Each check runs in a **child process**, because the failure we guard against most kills the
interpreter outright: an onnxruntime wheel built for a newer ARM core dies with SIGILL
("Illegal instruction") on a Pi 4's Cortex-A72. A parent cannot catch that, but it can see
the child's signal.

    /opt/qc-station/venv/bin/python deploy/pi_selftest.py [--models DIR ...] [--json]

Exit status: 0 all required checks passed, 2 onnxruntime (or a model run) was killed by a
signal, SIGILL or SIGSEGV (install-pi.sh then installs the fallback version), 1 anything else
failed.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_CRASHED = 0, 1, 2

# Child programs: small, print one line of facts, exit 0 when fine.
PROGRAMS: dict[str, str] = {
    "numpy": "import numpy; print(numpy.__version__)",
    "opencv": "import cv2; print(cv2.__version__)",
    "picamera2": (
        "import numpy; from picamera2 import Picamera2; "
        "print('picamera2 ok with numpy', numpy.__version__)"
    ),
    "gpiozero": "import gpiozero; print(gpiozero.__version__)",
    "onnxruntime": (
        "import onnxruntime as ort; print(ort.__version__, ort.get_available_providers())"
    ),
    "qc_station": "import qc_station, qc_station.capture; print(qc_station.__version__)",
}
#: Missing optional parts are reported, not failures (a USB-camera station has no picamera2).
OPTIONAL = {"picamera2", "gpiozero"}

# Runs every model once with zeros: int8 / fp32 kernels are picked at the first run.
MODEL_RUN = """
import sys, numpy as np, onnxruntime as ort
path = sys.argv[1]
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
feeds = {}
types = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
         "tensor(int64)": np.int64, "tensor(float16)": np.float16}
for i in sess.get_inputs():
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
    feeds[i.name] = np.zeros(shape, types.get(i.type, np.float32))
try:
    sess.run(None, feeds)
    print("ran", path)
except Exception as exc:  # a shape the zeros do not fit is not a crash: loading already worked
    print("loaded", path, "(run skipped:", type(exc).__name__, ")")
"""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    killed_by: int | None = None  # signal number when the child died of a signal
    optional: bool = False

    @property
    def sigill(self) -> bool:
        return self.killed_by == signal.SIGILL


def run_child(name: str, code: str, *args: str, python: str = sys.executable,
              timeout_s: float = 120.0, optional: bool = False) -> CheckResult:
    """Run ``code`` in a fresh interpreter; a death by SIGILL is reported as such."""
    try:
        proc = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return CheckResult(name, False, f"timed out after {timeout_s:.0f} s", optional=optional)
    out = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    detail = out[-1] if out else ""
    if proc.returncode == -signal.SIGILL:
        return CheckResult(name, False, "killed by SIGILL (Illegal instruction): this build uses CPU "
                           "instructions the processor does not have", killed_by=signal.SIGILL,
                           optional=optional)
    if proc.returncode < 0:
        sig = -proc.returncode
        return CheckResult(name, False, f"killed by signal {sig} ({signal.Signals(sig).name})",
                           killed_by=sig, optional=optional)
    return CheckResult(name, proc.returncode == 0, detail, optional=optional)


def find_models(dirs: list[Path]) -> list[Path]:
    models: list[Path] = []
    for d in dirs:
        if d.is_dir():
            models += sorted(d.rglob("*.onnx"))
    return models


def run_checks(model_dirs: list[Path], *, python: str = sys.executable) -> list[CheckResult]:
    results = [run_child(n, code, python=python, optional=n in OPTIONAL) for n, code in PROGRAMS.items()]
    ort_ok = next(r for r in results if r.name == "onnxruntime").ok
    if ort_ok:
        for model in find_models(model_dirs):
            results.append(run_child(f"model {model.name}", MODEL_RUN, str(model), python=python))
    return results


def exit_status(results: list[CheckResult]) -> int:
    if any(r.killed_by for r in results if r.name == "onnxruntime" or r.name.startswith("model ")):
        return EXIT_CRASHED
    return EXIT_OK if all(r.ok or r.optional for r in results) else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, action="append", default=[],
                        help="folder with .onnx files to load and run once (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = run_checks(args.models)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for r in results:
            mark = "ok  " if r.ok else ("skip" if r.optional else "FAIL")
            print(f"[{mark}] {r.name:<22} {r.detail}")
    return exit_status(results)


if __name__ == "__main__":
    sys.exit(main())
