#!/usr/bin/env bash
# Operator screen in kiosk mode: wait for the station's web server, then run Chromium full
# screen on it, and start it again if it is closed or crashes.
# Started at login by the desktop (labwc: ~/.config/labwc/autostart, wayfire: [autostart] in
# ~/.config/wayfire.ini); installed as /usr/local/bin/qc-station-kiosk by install-pi.sh --kiosk.
#   QC_STATION_URL   page to show (default http://127.0.0.1:8000/)
#   QC_KIOSK_WAIT_S  how long to wait for the server at boot (default 180)
set -uo pipefail

URL="${QC_STATION_URL:-http://127.0.0.1:8000/}"
WAIT_S="${QC_KIOSK_WAIT_S:-180}"
HEALTH="${URL%/}/api/health"

browser=""
for candidate in chromium-browser chromium; do
    if command -v "$candidate" >/dev/null 2>&1; then
        browser="$candidate"
        break
    fi
done
if [[ -z "$browser" ]]; then
    echo "qc-station-kiosk: no chromium found (sudo apt install chromium-browser)" >&2
    exit 1
fi

# The station starts with the system, the desktop may be faster: wait for the server.
for _ in $(seq "$WAIT_S"); do
    curl --silent --max-time 2 --output /dev/null "$HEALTH" && break
    sleep 1
done

# A fresh profile each time: no "restore pages?" bubble after a power cut, no stale cache.
profile="$(mktemp -d /tmp/qc-kiosk.XXXXXX)"
trap 'rm -rf "$profile"' EXIT

while true; do
    "$browser" \
        --kiosk "$URL" \
        --user-data-dir="$profile" \
        --ozone-platform-hint=auto \
        --noerrdialogs \
        --disable-infobars \
        --disable-session-crashed-bubble \
        --disable-features=Translate,TouchpadOverscrollHistoryNavigation \
        --overscroll-history-navigation=0 \
        --disable-pinch \
        --check-for-update-interval=31536000 \
        --password-store=basic \
        --no-first-run
    # Closed (Alt+F4) or crashed: show the screen again after a moment.
    sleep 3
done
