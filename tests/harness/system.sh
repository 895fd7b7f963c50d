#!/usr/bin/env bash
# System set-up for the molecule and integration tiers: Debian packages and a Docker daemon.
# Idempotent; run as root on Debian (the lab controller or CI machine).
set -euo pipefail

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# promtool (from Debian's prometheus package) checks and unit-tests the monitoring role's alert rules.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The lab report page is tested in headless Chromium; shell scripts are checked by shellcheck.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "ERROR: missing system packages: ${need[*]} (run as root or: sudo apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  echo "==> apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Only promtool is wanted from the prometheus package: no Prometheus server on the test machine.
  if [[ " ${need[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 \
      && systemctl is-system-running >/dev/null 2>&1; then
    systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  fi
fi

if ! docker info >/dev/null 2>&1; then
  echo "==> starting dockerd (log: /var/log/ailab-dockerd.log)"
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    systemctl start docker
  else
    nohup dockerd >/var/log/ailab-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { tail -n 20 /var/log/ailab-dockerd.log >&2; echo "ERROR: dockerd did not start" >&2; exit 1; }
fi
