#!/usr/bin/env bash
# A caching proxy for the distribution archives (Debian's apt-cacher-ng), for the TEST HOSTS only: they download the
# real Ubuntu packages (Docker, Canonical's NVIDIA driver branches, ...) through it, so a package that one scenario or a
# previous run fetched is not downloaded again. Index files are revalidated against the archive on every `apt update`
# (apt-cacher-ng's handling of volatile files); packages are immutable per version. It listens on 127.0.0.1 and the
# Docker bridge's gateway only. Test hosts find it by their image's apt Proxy-Auto-Detect helper
# (tests/hosts/test-host-images.sh) and go to the archive directly when it does not answer. Nothing of the collection
# knows about it. Storage: $OCI_VLLM_CACHE/apt-cacher-ng. Idempotent: returns at once when it already answers.
#   scripts/apt-cache.sh          start it (installs apt-cacher-ng if missing)
#   scripts/apt-cache.sh stop     stop it
set -euo pipefail

port=3142
dir=${OCI_VLLM_CACHE:-/var/tmp/oci-vllm}/apt-cacher-ng
pidfile=$dir/run/pid

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if [ "${1:-start}" = stop ]; then
  running && kill "$(cat "$pidfile")"
  exit 0
fi
if running && curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$port/acng-report.html"; then
  exit 0
fi
if ! command -v apt-cacher-ng >/dev/null 2>&1; then
  echo "apt-cache: installing apt-cacher-ng from the distribution archive"
  # Its maintainer scripts start no daemon on a machine without systemd; ours below has a configuration of its own.
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apt-cacher-ng >/dev/null
fi
# Where systemd runs, the package's own service listens on every interface: ours (below) replaces it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
  systemctl disable --now apt-cacher-ng >/dev/null 2>&1 || true
fi
gateway=$(docker network inspect bridge -f '{{ (index .IPAM.Config 0).Gateway }}')
mkdir -p "$dir/conf" "$dir/cache" "$dir/log" "$dir/run"
# No Remap-* lines: each archive host keeps its own cache tree and is fetched from itself.
cat >"$dir/conf/acng.conf" <<EOF
CacheDir: $dir/cache
LogDir: $dir/log
SupportDir: /usr/lib/apt-cacher-ng
Port: $port
BindAddress: 127.0.0.1 $gateway
PidFile: $pidfile
SocketPath: $dir/run/socket
ForeGround: 0
ReportPage: acng-report.html
EOF
if running; then
  old=$(cat "$pidfile")
  kill "$old"
  for _ in $(seq 20); do kill -0 "$old" 2>/dev/null || break; sleep 0.25; done
fi
apt-cacher-ng -c "$dir/conf"
for _ in $(seq 20); do
  # Ours (the pidfile's process), not some other apt-cacher-ng on the port.
  running && curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/acng-report.html" && exit 0
  sleep 0.5
done
echo "apt-cache: apt-cacher-ng did not answer on 127.0.0.1:$port; last log lines:" >&2
tail -n 20 "$dir/log/apt-cacher.err" >&2 || true
exit 1
