#!/usr/bin/env bash
# Make sure the browser side of the PUXT accessibility scans is here, without any browser download:
#   - Debian's `chromium` at /usr/bin/chromium (Playwright drives it through `executable_path`);
#   - axe-core from the npm registry, pinned, unpacked under .venv/axe-core/ where the scanner looks for it.
# Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

AXE_VERSION="${AXE_VERSION:-4.11.0}"
AXE_DIR=".venv/axe-core"

if ! [ -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-chromium.sh: installing the chromium package needs root (try: sudo $0)" >&2
    exit 1
  fi
  echo "installing Chromium (Debian package)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

if ! [ -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ] \
  || ! grep -q "\"version\": \"$AXE_VERSION\"" "$AXE_DIR/node_modules/axe-core/package.json" 2>/dev/null; then
  command -v npm >/dev/null 2>&1 || { echo "ensure-chromium.sh: npm is needed to fetch axe-core" >&2; exit 1; }
  echo "fetching axe-core $AXE_VERSION (npm registry)…"
  mkdir -p "$AXE_DIR"
  npm install --silent --no-audit --no-fund --prefix "$AXE_DIR" "axe-core@$AXE_VERSION" >/dev/null
fi
