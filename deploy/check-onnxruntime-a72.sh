#!/usr/bin/env bash
# Does an onnxruntime aarch64 wheel run on a Raspberry Pi 4's CPU? Check it on any x86 Debian
# machine, under qemu-aarch64 emulating a Cortex-A72 (ARMv8.0-A: no LSE atomics, no fp16, no
# dot product, which is what the "Illegal instruction" crashes are about).
#
#   sudo deploy/check-onnxruntime-a72.sh 1.20.1 1.21.0 1.26.0
#
# Per version: imports onnxruntime with Bookworm's arm64 Python 3.11 and numpy 1.26 (as on the
# Pi), then runs a small fp32 Conv+MatMul model and its int8 (ConvInteger / MatMulInteger) copy.
# Prints one line per version and CPU model ("cortex-a72", and "max" as the control: a crash
# on both is the emulator's, not the CPU's). Needs: Debian bookworm host, root (apt-get install
# qemu-user), network access to the Debian archive and PyPI, the repo's .venv (onnx, pip).
# Emulation is evidence, not proof: confirm on a real Pi 4 with deploy/pi_selftest.py.
set -euo pipefail

[[ $# -ge 1 ]] || { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2; }
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${WORK:-/tmp/ort-a72}"
APT_ROOT="$WORK/apt"
ROOTFS="$WORK/rootfs"
PY="$REPO/.venv/bin/python"

command -v qemu-aarch64 >/dev/null || apt-get install -y --no-install-recommends qemu-user

# A private apt state for arm64 packages: the host's dpkg and architectures stay untouched.
if [[ ! -x "$ROOTFS/usr/bin/python3.11" ]]; then
    mkdir -p "$APT_ROOT/etc/apt/preferences.d" "$APT_ROOT/lists/partial" "$APT_ROOT/cache/archives/partial"
    touch "$APT_ROOT/status"
    echo "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" \
        >"$APT_ROOT/etc/apt/sources.list"
    apt_opts=(-o "Dir::Etc=$APT_ROOT/etc/apt" -o "Dir::State::Lists=$APT_ROOT/lists"
              -o "Dir::State::status=$APT_ROOT/status" -o "Dir::Cache=$APT_ROOT/cache"
              -o APT::Architecture=arm64 -o "APT::Architectures::=arm64" -o Debug::NoLocking=1)
    apt-get "${apt_opts[@]}" update
    apt-get "${apt_opts[@]}" install -y --download-only --no-install-recommends python3.11 libstdc++6 libgomp1
    mkdir -p "$ROOTFS"
    for deb in "$APT_ROOT"/cache/archives/*.deb; do
        dpkg-deb -x "$deb" "$ROOTFS"
    done
fi

# The probe models (fp32 and dynamic int8), built with the host's onnx + onnxruntime.
mkdir -p "$WORK/models"
"$PY" - "$WORK/models" <<'EOF'
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

out = Path(sys.argv[1])
rng = np.random.default_rng(0)
inits = [numpy_helper.from_array(rng.normal(size=(16, 3, 3, 3)).astype(np.float32), "W"),
         numpy_helper.from_array(np.zeros(16, np.float32), "B"),
         numpy_helper.from_array(rng.normal(size=(16 * 30 * 30, 8)).astype(np.float32), "M"),
         numpy_helper.from_array(np.array([1, -1], np.int64), "shape")]
nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Reshape", ["r", "shape"], ["f"]),
         helper.make_node("MatMul", ["f", "M"], ["y"])]
graph = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 30, 30])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8  # loadable by old runtimes too
onnx.save(model, out / "probe_fp32.onnx")
quantize_dynamic(str(out / "probe_fp32.onnx"), str(out / "probe_int8.onnx"), weight_type=QuantType.QUInt8)
q = onnx.load(out / "probe_int8.onnx")
q.ir_version = 8
onnx.save(q, out / "probe_int8.onnx")
np.save(out / "x.npy", rng.normal(size=(1, 3, 30, 30)).astype(np.float32))
EOF
cat >"$WORK/models/probe.py" <<'EOF'
import sys
import numpy as np
import onnxruntime as ort
d = sys.argv[1]
x = np.load(f"{d}/x.npy")
for name in ("probe_fp32.onnx", "probe_int8.onnx"):
    ort.InferenceSession(f"{d}/{name}", providers=["CPUExecutionProvider"]).run(None, {"x": x})
print("ok", ort.__version__)
EOF

for version in "$@"; do
    target="$WORK/wheels/$version"
    if [[ ! -d "$target/onnxruntime" ]]; then
        "$PY" -m pip install --quiet --target "$target" --only-binary=:all: --implementation cp \
            --python-version 3.11 --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 \
            --platform manylinux2014_aarch64 "onnxruntime==$version" "numpy<2"
    fi
    for cpu in cortex-a72 max; do
        status=0
        PYTHONPATH="$target" qemu-aarch64 -cpu "$cpu" -L "$ROOTFS" "$ROOTFS/usr/bin/python3.11" \
            "$WORK/models/probe.py" "$WORK/models" >"$WORK/last.log" 2>&1 || status=$?
        case $status in
            0) verdict="runs (import, fp32, int8)" ;;
            132) verdict="SIGILL: Illegal instruction" ;;
            139) verdict="SIGSEGV" ;;
            *) verdict="failed (exit $status): $(tail -n 1 "$WORK/last.log")" ;;
        esac
        printf 'onnxruntime %-8s %-11s %s\n' "$version" "$cpu" "$verdict"
    done
done
