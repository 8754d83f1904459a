#!/usr/bin/env bash
# Install the mask QC station on Raspberry Pi OS Bookworm (64-bit), as a systemd service.
#
#   sudo deploy/install-pi.sh                      # station + service
#   sudo deploy/install-pi.sh --kiosk pi           # + operator screen in kiosk mode for user "pi"
#
# What it does (each step is safe to repeat):
#   1. apt: python3-picamera2 (libcamera bindings; not installable with pip), python3-venv,
#      python3-gpiozero, python3-lgpio; chromium with --kiosk
#   2. a system user "qcstation" (groups video, render, gpio, dialout) and
#      /opt/qc-station (venv), /etc/qc-station (config), /var/lib/qc-station (data)
#   3. a venv with --system-site-packages (so it sees apt's picamera2), then
#      pip install of this source tree with deploy/constraints-pi.txt
#   4. a self-test in child processes (deploy/pi_selftest.py); if onnxruntime is killed
#      ("Illegal instruction" on a Pi 4) the fallback version is installed and tested again
#   5. /etc/qc-station/station.toml from deploy/station.example.toml (only if absent),
#      the systemd unit, enabled; started once /etc/qc-station/station.json exists
#   6. --kiosk USER: chromium --kiosk on the operator screen at login (labwc or wayfire)
#
# Details and troubleshooting: docs/raspberry-pi.md
set -euo pipefail

APP_USER=qcstation
PREFIX=/opt/qc-station
CONF_DIR=/etc/qc-station
DATA_DIR=/var/lib/qc-station
VENV="$PREFIX/venv"
ORT_FALLBACK="${ORT_FALLBACK:-onnxruntime==1.20.1}"
SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIOSK_USER=""
FORCE=0

usage() {
    sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --kiosk) KIOSK_USER="${2:-}"; [[ -n "$KIOSK_USER" ]] || die "--kiosk needs a user name"; shift 2 ;;
        --force) FORCE=1; shift ;;
        -h|--help) usage 0 ;;
        *) warn "unknown option $1"; usage 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root: sudo $0 $*"
[[ -f "$SRC_DIR/pyproject.toml" ]] || die "run this script from the qc-station source tree (deploy/ inside it)"

# -- 0. the platform ------------------------------------------------------------------------
arch="$(uname -m)"
codename="$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null || true)"
codename="${codename:-unknown}"
if [[ "$arch" != "aarch64" || "$codename" != "bookworm" ]]; then
    msg="this script is written for Raspberry Pi OS Bookworm 64-bit (aarch64); found $arch / $codename"
    if [[ $FORCE -eq 1 ]]; then
        warn "$msg (continuing: --force)"
    else
        die "$msg (use --force to try anyway)"
    fi
fi
model="$(tr -d '\0' </proc/device-tree/model 2>/dev/null || echo unknown)"
log "installing on: $model ($arch, $codename)"

# -- 1. system packages ---------------------------------------------------------------------
log "apt packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# --no-install-recommends: picamera2's recommends pull in the Qt/GL preview stack we do not use.
apt-get install -y --no-install-recommends \
    python3-picamera2 python3-venv python3-pip python3-gpiozero python3-lgpio rpicam-apps-lite curl
if [[ -n "$KIOSK_USER" ]]; then
    # The package is chromium-browser on Raspberry Pi OS Bookworm, chromium on later releases.
    if apt-cache show chromium-browser >/dev/null 2>&1; then
        apt-get install -y chromium-browser
    else
        apt-get install -y chromium
    fi
fi

# -- 2. user and folders ----------------------------------------------------------------------
log "user $APP_USER and folders"
groups_wanted=()
for g in video render gpio dialout; do
    getent group "$g" >/dev/null && groups_wanted+=("$g")
done
group_list="$(IFS=,; echo "${groups_wanted[*]}")"
if ! id "$APP_USER" >/dev/null 2>&1; then
    useradd --system --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin \
        --groups "$group_list" "$APP_USER"
else
    usermod --append --groups "$group_list" "$APP_USER"
fi
install -d -m 0755 "$PREFIX"
install -d -m 0750 -o root -g "$APP_USER" "$CONF_DIR"
install -d -m 0750 -o "$APP_USER" -g "$APP_USER" "$DATA_DIR"

# -- 3. the venv and the package --------------------------------------------------------------
log "venv $VENV (--system-site-packages: it must see apt's picamera2)"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv --system-site-packages "$VENV"
fi
export PIP_CONSTRAINT="$SRC_DIR/deploy/constraints-pi.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$VENV/bin/pip" install --upgrade "$SRC_DIR"
install -m 0644 "$SRC_DIR/docs/raspberry-pi.md" "$PREFIX/README-raspberry-pi.md"

# -- 4. self-test on this very CPU ------------------------------------------------------------
selftest() {
    "$VENV/bin/python" "$SRC_DIR/deploy/pi_selftest.py" --models "$SRC_DIR/models"
}
log "self-test"
status=0
selftest || status=$?
if [[ $status -eq 2 ]]; then
    warn "onnxruntime was killed on this CPU (see above); installing $ORT_FALLBACK"
    "$VENV/bin/pip" install "$ORT_FALLBACK"
    status=0
    selftest || status=$?
fi
[[ $status -eq 0 ]] || die "self-test failed (see above); the service was not enabled"

# -- 5. config and service --------------------------------------------------------------------
if [[ ! -f "$CONF_DIR/station.toml" ]]; then
    log "config $CONF_DIR/station.toml (from deploy/station.example.toml; edit it)"
    install -m 0640 -o root -g "$APP_USER" "$SRC_DIR/deploy/station.example.toml" "$CONF_DIR/station.toml"
else
    log "keeping the existing $CONF_DIR/station.toml"
fi
log "systemd unit"
install -m 0644 "$SRC_DIR/deploy/qc-station.service" /etc/systemd/system/qc-station.service
systemctl daemon-reload
systemctl enable qc-station.service
if [[ -f "$CONF_DIR/station.json" ]]; then
    systemctl restart qc-station.service
    log "started: systemctl status qc-station / journalctl -u qc-station -f"
else
    warn "no calibration yet: print the board, calibrate, copy station.json to $CONF_DIR/, then"
    warn "  sudo systemctl start qc-station      (docs/raspberry-pi.md, 'First start')"
fi

# -- 6. kiosk ---------------------------------------------------------------------------------
if [[ -n "$KIOSK_USER" ]]; then
    log "kiosk for user $KIOSK_USER"
    home="$(getent passwd "$KIOSK_USER" | cut -d: -f6)"
    [[ -n "$home" && -d "$home" ]] || die "user $KIOSK_USER has no home folder"
    install -m 0755 "$SRC_DIR/deploy/kiosk/qc-station-kiosk.sh" /usr/local/bin/qc-station-kiosk
    # labwc is the default compositor of Raspberry Pi OS Bookworm since late 2024, wayfire before.
    install -d -o "$KIOSK_USER" -g "$KIOSK_USER" "$home/.config" "$home/.config/labwc"
    autostart="$home/.config/labwc/autostart"
    touch "$autostart"
    grep -q qc-station-kiosk "$autostart" || echo "/usr/local/bin/qc-station-kiosk &" >>"$autostart"
    chown "$KIOSK_USER:$KIOSK_USER" "$autostart"
    wayfire_ini="$home/.config/wayfire.ini"
    if [[ -f "$wayfire_ini" ]] && ! grep -q qc-station-kiosk "$wayfire_ini"; then
        if grep -q '^\[autostart\]' "$wayfire_ini"; then
            sed -i '/^\[autostart\]/a qcstation_kiosk = /usr/local/bin/qc-station-kiosk' "$wayfire_ini"
        else
            printf '\n[autostart]\nqcstation_kiosk = /usr/local/bin/qc-station-kiosk\n' >>"$wayfire_ini"
        fi
    fi
    if command -v raspi-config >/dev/null; then
        raspi-config nonint do_boot_behaviour B4   # desktop, logged in automatically
        raspi-config nonint do_blanking 1          # never blank the operator screen
    else
        warn "raspi-config not found: enable desktop autologin and disable screen blanking by hand"
    fi
    log "kiosk installed; it starts at the next login of $KIOSK_USER (sudo reboot)"
fi

log "done"
