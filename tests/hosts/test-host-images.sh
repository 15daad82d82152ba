#!/usr/bin/env bash
# Build the systemd test-host images Molecule uses, from debootstrap rootfs + `docker import` (no registry here).
#   tests/hosts/test-host-images.sh [jammy] [noble] [bookworm]     (default: jammy noble)
# The Ubuntu images look like OCI's Canonical Ubuntu platform images as far as a container can (sshd, user ubuntu,
# OCI's host firewall, apt-daily/unattended-upgrades, the linux-oracle meta packages): tests/hosts/test-host-files/
# holds what goes in and its README.md says what is like OCI, what is not, and how to run a container from them.
# bookworm stays a plain systemd host. Idempotent and fast on re-run: an image is rebuilt only when its recipe (this
# script and every file it copies in) changed (label oci-vllm.recipe).
#   OCI_VLLM_TEST_KERNEL=0   build the Ubuntu images without the linux-oracle meta packages (about 35 s and 300 MB less)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
files=$here/test-host-files
image_files=(setup-oci-like.sh oci-rules.v4 oci-rules.v6)  # copied into the Ubuntu images
cache=${OCI_VLLM_CACHE:-/var/tmp/oci-vllm}
kernel=${OCI_VLLM_TEST_KERNEL:-1}
case "$kernel" in 0 | 1) ;; *) echo "OCI_VLLM_TEST_KERNEL='$kernel': allowed are 0 and 1" >&2; exit 1 ;; esac
recipe=$({ cat "$here/$(basename "$0")"; (cd "$files" && sha256sum "${image_files[@]}"); echo "kernel=$kernel"; } \
  | sha256sum | cut -c1-16)
ubuntu_mirror=${UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}
debian_mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
host_ca_bundle=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
packages=systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,sudo,gnupg,curl,iproute2,procps,kmod

"$here/../../scripts/docker-engine.sh"
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

# Test harness, not OCI: apt asks this helper which proxy to use for each URI. For the image's own archive it names the
# machine's apt cache (scripts/apt-cache.sh, port 3142 on the container's default gateway) while that answers, else
# DIRECT; every other source (the role's, the stand-ins') always goes direct. See test-host-files/README.md.
apt_cache_helper() {
  local suite=$1 rootfs=$2 mirror helper=/usr/local/lib/oci-vllm-test/apt-cache-proxy
  case "$suite" in bookworm) mirror=$debian_mirror ;; *) mirror=$ubuntu_mirror ;; esac
  mirror=${mirror#http://}
  mirror=${mirror%%/*}
  mkdir -p "$rootfs${helper%/*}"
  sed "s|@MIRROR@|$mirror|g" >"$rootfs$helper" <<'HELPER'
#!/bin/sh
# Test harness (tests/hosts/test-host-images.sh): the test machine's apt cache for @MIRROR@, if it answers.
case "$1" in
  http://@MIRROR@/* | http://@MIRROR@) ;;
  *) echo DIRECT; exit 0 ;;
esac
gateway=$(ip -4 route show default 2>/dev/null | awk '{ print $3; exit }')
if [ -n "$gateway" ] && timeout 1 bash -c "exec 3<>/dev/tcp/$gateway/3142" 2>/dev/null; then
  echo "http://$gateway:3142"
else
  echo DIRECT
fi
HELPER
  chmod 0755 "$rootfs$helper"
  printf 'Acquire::http::Proxy-Auto-Detect "%s";\n' "$helper" >"$rootfs/etc/apt/apt.conf.d/01oci-vllm-test-apt-cache"
}

build() {
  local suite=$1 image rootfs start=$SECONDS
  image=$(image_for "$suite")
  if [ "$(docker image inspect -f '{{ index .Config.Labels "oci-vllm.recipe" }}' "$image" 2>/dev/null)" = "$recipe" ]; then
    echo "test-host-images: $image is up to date"
    return 0
  fi
  rootfs="$cache/rootfs-$suite"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  echo "test-host-images: debootstrap $suite -> $image"
  local ctx
  ctx=$(mktemp -d)
  printf 'FROM %s\n' "$image-rootfs" >"$ctx/Dockerfile"
  case "$suite" in
    bookworm)
      debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$debian_mirror" >"$cache/debootstrap-$suite.log" 2>&1
      printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$debian_mirror" "$debian_mirror" >"$rootfs/etc/apt/sources.list"
      # A plain systemd host: no apt runs of its own after boot.
      ln -sf /dev/null "$rootfs/etc/systemd/system/apt-daily.timer"
      ln -sf /dev/null "$rootfs/etc/systemd/system/apt-daily-upgrade.timer"
      ;;
    *)
      # debootstrap 1.0.128 has no noble script; the generic Ubuntu (gutsy) script handles it.
      local script=/usr/share/debootstrap/scripts/$suite
      [ -e "$script" ] || script=/usr/share/debootstrap/scripts/gutsy
      debootstrap --variant=minbase --components=main,universe --keyring="$(ubuntu_keyring)" \
        --include="$packages" "$suite" "$rootfs" "$ubuntu_mirror" "$script" >"$cache/debootstrap-$suite.log" 2>&1
      # restricted + multiverse: Canonical's NVIDIA driver and Fabric Manager packages live there.
      printf 'deb %s %s main universe restricted multiverse\ndeb %s %s-updates main universe restricted multiverse\n' \
        "$ubuntu_mirror" "$suite" "$ubuntu_mirror" "$suite" >"$rootfs/etc/apt/sources.list"
      rm -f "$rootfs/etc/apt/sources.list.d/ubuntu.sources"
      mkdir "$ctx/files"
      (cd "$files" && cp "${image_files[@]}" "$ctx/files/")
      printf 'COPY files /tmp/oci-vllm-setup\nRUN OCI_VLLM_TEST_KERNEL=%s bash /tmp/oci-vllm-setup/setup-oci-like.sh && rm -rf /tmp/oci-vllm-setup\n' \
        "$kernel" >>"$ctx/Dockerfile"
      ;;
  esac
  # HTTPS may pass a TLS-intercepting proxy: trust what the host trusts, also after update-ca-certificates runs.
  apt_cache_helper "$suite" "$rootfs"
  cp "$host_ca_bundle" "$rootfs/usr/local/share/ca-certificates/oci-vllm-host-bundle.crt"
  cp "$host_ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # Units that have nothing to do in a container and only slow boot or fail.
  for unit in systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    getty.target console-getty.service systemd-logind.service; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  : >"$rootfs/etc/machine-id"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  # An emptied list dir must not look freshly updated, or apt cache_valid_time would skip the update.
  touch -d '2000-01-01' "$rootfs/var/lib/apt/lists"
  tar -C "$rootfs" -c . | docker import - "$image-rootfs" >/dev/null
  rm -rf "$rootfs"
  printf 'LABEL oci-vllm.recipe=%s\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\nCMD ["/lib/systemd/systemd"]\n' \
    "$recipe" >>"$ctx/Dockerfile"
  local log="$cache/image-build-$suite.log" status=0
  DOCKER_BUILDKIT=0 docker build --network host --force-rm -t "$image" "$ctx" >"$log" 2>&1 || status=$?
  docker rmi "$image-rootfs" >/dev/null
  rm -rf "$ctx"
  if [ $status -ne 0 ]; then
    echo "test-host-images: building $image failed; last lines of $log:" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
  echo "test-host-images: built $image in $((SECONDS - start)) s"
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
