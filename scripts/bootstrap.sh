#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages the project runs
# as child processes, the virtual environment and the project with its dev tools.
# Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# --- Debian packages --------------------------------------------------------
missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have mosquitto || missing+=(mosquitto)
have mosquitto_pub || missing+=(mosquitto-clients)
have influxd || missing+=(influxdb)
# The console's browser tests drive Debian's Chromium through Playwright; Playwright
# never downloads a browser of its own (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD below).
have chromium || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # DeltaSense runs its own broker and database under var/; system copies
  # started by the packages would hold the default ports.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for unit in mosquitto influxdb; do
      $SUDO systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
  fi
fi

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

# --- Python -----------------------------------------------------------------
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: Python >= 3.11 is required ($("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.deltasense-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing the project and its dev dependencies into $VENV"
  log="$VENV/pip-install.log"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
         "$VENV/bin/python" -m pip install -e '.[dev]'; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "bootstrap: pip install failed; full log in $log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# --- Node tooling (MicroPython interpreter for the firmware tests) ---------------
if ! command -v node >/dev/null 2>&1; then
  echo "bootstrap: installing Debian package nodejs"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
npm_stamp="node_modules/.deltasense-lock"
npm_want=$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -f "$npm_stamp" ] || [ "$(cat "$npm_stamp")" != "$npm_want" ]; then
  echo "bootstrap: npm ci"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  echo "$npm_want" > "$npm_stamp"
fi
# The console's third-party code, served by the API from api/static/vendor/
# (git-ignored, rebuilt from node_modules; no CDN, works offline).
vendor=api/static/vendor
vendor_stamp="$vendor/.deltasense-lock"
# Again when the packages or the script's list of files change.
vendor_want=$(cat package.json package-lock.json scripts/vendor_console.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$vendor_stamp" ] || [ "$(cat "$vendor_stamp")" != "$vendor_want" ]; then
  echo "bootstrap: copying Leaflet, Leaflet.markercluster, uPlot, Swagger UI and ReDoc into $vendor"
  sh scripts/vendor_console.sh
  echo "$vendor_want" > "$vendor_stamp"
fi

# --- MicroPython stub environments for mypy of firmware/ (one per port: the
# stub packages overwrite each other's modules) --------------------------------
STUBS_VERSION=1.27.0.post1
for port in esp32 rp2; do
  dir=".venv-stubs/$port"
  if [ "$(cat "$dir/.version" 2>/dev/null)" != "$STUBS_VERSION" ]; then
    echo "bootstrap: installing micropython-$port-stubs==$STUBS_VERSION into $dir"
    rm -rf "$dir"
    "$VENV/bin/python" -m pip install -q --target "$dir" "micropython-$port-stubs==$STUBS_VERSION" \
      >"$VENV/pip-stubs-$port.log" 2>&1 || { tail -n 20 "$VENV/pip-stubs-$port.log" >&2; exit 1; }
    echo "$STUBS_VERSION" > "$dir/.version"
  fi
done
