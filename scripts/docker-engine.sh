#!/usr/bin/env bash
# Make sure a Docker engine answers. Hosts of this kind have no systemd, so dockerd is started in the background.
# Idempotent: returns at once when `docker info` already works.
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/oci-vllm-dockerd.log}

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-engine: installing docker.io from the distribution archive"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    systemctl start docker
  else
    echo "docker-engine: starting dockerd in the background (log: $log)"
    nohup dockerd >"$log" 2>&1 &
  fi
fi
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "docker-engine: dockerd did not answer within 60 s; last log lines:" >&2
tail -n 20 "$log" >&2 || true
exit 1
