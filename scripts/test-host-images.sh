#!/usr/bin/env bash
# Build the systemd test-host images Molecule uses, from debootstrap rootfs + `docker import` (no registry here).
#   scripts/test-host-images.sh [jammy] [noble] [bookworm]     (default: jammy noble)
# Idempotent and fast on re-run: an image is rebuilt only when this recipe changed (label oci-vllm.recipe).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${OCI_VLLM_CACHE:-/var/tmp/oci-vllm}
recipe=$(sha256sum "$0" | cut -c1-16)
ubuntu_mirror=${UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}
debian_mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
host_ca_bundle=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
packages=systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,sudo,gnupg,curl,iproute2,procps,kmod

"$here/docker-engine.sh"
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }

image_for() {
  case "$1" in
    jammy) echo "oci-vllm-test/ubuntu:22.04" ;;
    noble) echo "oci-vllm-test/ubuntu:24.04" ;;
    bookworm) echo "oci-vllm-test/debian:12" ;;
    *) echo "unknown suite '$1': allowed are jammy, noble, bookworm" >&2; return 1 ;;
  esac
}

ubuntu_keyring() {
  # Debian does not ship Ubuntu's archive key: take it from the ubuntu-keyring package in the Ubuntu archive.
  local keyring="$cache/ubuntu-archive-keyring.gpg"
  if [ ! -s "$keyring" ]; then
    local tmp filename
    tmp=$(mktemp -d)
    filename=$(curl -fsS "$ubuntu_mirror/dists/noble/main/binary-amd64/Packages.gz" | zcat \
      | awk '/^Package: ubuntu-keyring$/{f=1} f && /^Filename:/{print $2; f=0}')  # reads to the end: SIGPIPE + pipefail
    curl -fsS -o "$tmp/k.deb" "$ubuntu_mirror/$filename"
    dpkg-deb -x "$tmp/k.deb" "$tmp/x"
    cp "$tmp/x/usr/share/keyrings/ubuntu-archive-keyring.gpg" "$keyring"
    rm -rf "$tmp"
  fi
  echo "$keyring"
}

build() {
  local suite=$1 image rootfs
  image=$(image_for "$suite")
  if [ "$(docker image inspect -f '{{ index .Config.Labels "oci-vllm.recipe" }}' "$image" 2>/dev/null)" = "$recipe" ]; then
    echo "test-host-images: $image is up to date"
    return 0
  fi
  rootfs="$cache/rootfs-$suite"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  echo "test-host-images: debootstrap $suite -> $image"
  case "$suite" in
    bookworm)
      debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$debian_mirror" >"$cache/debootstrap-$suite.log" 2>&1
      printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$debian_mirror" "$debian_mirror" >"$rootfs/etc/apt/sources.list"
      ;;
    *)
      # debootstrap 1.0.128 has no noble script; the generic Ubuntu (gutsy) script handles it.
      local script=/usr/share/debootstrap/scripts/$suite
      [ -e "$script" ] || script=/usr/share/debootstrap/scripts/gutsy
      debootstrap --variant=minbase --components=main,universe --keyring="$(ubuntu_keyring)" \
        --include="$packages" "$suite" "$rootfs" "$ubuntu_mirror" "$script" >"$cache/debootstrap-$suite.log" 2>&1
      printf 'deb %s %s main universe\ndeb %s %s-updates main universe\n' \
        "$ubuntu_mirror" "$suite" "$ubuntu_mirror" "$suite" >"$rootfs/etc/apt/sources.list"
      rm -f "$rootfs/etc/apt/sources.list.d/ubuntu.sources"
      ;;
  esac
  # HTTPS may pass a TLS-intercepting proxy: trust what the host trusts, also after update-ca-certificates runs.
  cp "$host_ca_bundle" "$rootfs/usr/local/share/ca-certificates/oci-vllm-host-bundle.crt"
  cp "$host_ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # Units that have nothing to do in a container and only slow boot or fail.
  for unit in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    getty.target console-getty.service systemd-logind.service apt-daily.timer apt-daily-upgrade.timer; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  : >"$rootfs/etc/machine-id"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  # An emptied list dir must not look freshly updated, or apt cache_valid_time would skip the update.
  touch -d '2000-01-01' "$rootfs/var/lib/apt/lists"
  tar -C "$rootfs" -c . | docker import - "$image-rootfs" >/dev/null
  local ctx
  ctx=$(mktemp -d)
  printf 'FROM %s\nLABEL oci-vllm.recipe=%s\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\nCMD ["/lib/systemd/systemd"]\n' \
    "$image-rootfs" "$recipe" >"$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null 2>&1
  docker rmi "$image-rootfs" >/dev/null
  rm -rf "$ctx" "$rootfs"
  echo "test-host-images: built $image"
}

mkdir -p "$cache"
ubuntu_keyring >/dev/null  # fetched once, before the parallel builds
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(jammy noble)
pids=()
for suite in "${suites[@]}"; do
  image_for "$suite" >/dev/null
  build "$suite" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
