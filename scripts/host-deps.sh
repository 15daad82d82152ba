#!/usr/bin/env bash
# Debian packages the test suite needs on the host. Installs only what is missing (fast on re-run).
set -euo pipefail

declare -A wanted=(
  [dockerd]=docker.io
  [debootstrap]=debootstrap
  [shellcheck]=shellcheck
  [dpkg-scanpackages]=dpkg-dev
  [gpg]=gnupg
  [ip]=iproute2
  [curl]=curl
  [ssh]=openssh-client
  [openssl]=openssl
  # A real registry for the tests (tests/functional/local_registry.py) and its bcrypt htpasswd file.
  [docker-registry]=docker-registry
  [htpasswd]=apache2-utils
  # The test hosts' apt cache (scripts/apt-cache.sh).
  [apt-cacher-ng]=apt-cacher-ng
)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "host-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
