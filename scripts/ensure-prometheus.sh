#!/usr/bin/env bash
# Make sure a `prometheus` binary is on the PATH for the PLOS analysis tests: install Debian's package if
# it is missing. The tests start their own server on a free port with a throw-away config, so the
# package's system service is kept from starting. Safe to run repeatedly.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-prometheus.sh: installing the prometheus package needs root (try: sudo $0)" >&2
  exit 1
fi

echo "installing Prometheus (Debian package)…"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 tells the package scripts not to start the service. Only add one if the image
# has none of its own, and remove only ours.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
# Recommends would pull in node-exporter and its service; the tests need the server only.
apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# Belt and braces: if an init system started it anyway, stop it so it does not hold port 9090.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
  systemctl disable prometheus >/dev/null 2>&1 || true
fi

prometheus --version 2>&1 | head -n 1
