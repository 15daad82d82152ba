#!/usr/bin/env bash
# Populate .collections/ (ansible.cfg's collections_path) without Galaxy, which is unreachable here:
#  - ansible_collections/oci_gpu/vllm -> this checkout (symlink), so FQCNs resolve from the repo root;
#  - community.docker and what it needs, taken out of the `ansible` wheel on PyPI, which bundles them.
# Idempotent: does nothing when the wanted wheel version is already unpacked.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OCI_VLLM_CACHE:-/var/tmp/oci-vllm}
ansible_wheel_version=${ANSIBLE_BUNDLE_VERSION:-12.3.0}
python=${PYTHON:-$root/.venv/bin/python}
dest=$root/.collections/ansible_collections
wanted=(community/docker community/library_inventory_filtering_v1 ansible/posix community/general)

mkdir -p "$dest/oci_gpu" "$cache"
ln -sfn ../../.. "$dest/oci_gpu/vllm"

stamp=$dest/.bundled-from-ansible-$ansible_wheel_version
[ -e "$stamp" ] && exit 0

wheel=$(ls "$cache"/ansible-"$ansible_wheel_version"-py3-none-any.whl 2>/dev/null || true)
if [ -z "$wheel" ]; then
  "$python" -m pip download -q --no-deps -d "$cache" "ansible==$ansible_wheel_version"
  wheel=$cache/ansible-$ansible_wheel_version-py3-none-any.whl
fi
tmp=$(mktemp -d)
"$python" - "$wheel" "$tmp" "${wanted[@]}" <<'PY'
import sys, zipfile
wheel, target, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
prefixes = tuple(f"ansible_collections/{c}/" for c in wanted)
with zipfile.ZipFile(wheel) as zf:
    zf.extractall(target, [n for n in zf.namelist() if n.startswith(prefixes)])
PY
for c in "${wanted[@]}"; do
  rm -rf "${dest:?}/$c"
  mkdir -p "$dest/$(dirname "$c")"
  mv "$tmp/ansible_collections/$c" "$dest/$c"
done
rm -rf "$tmp"
rm -f "$dest"/.bundled-from-ansible-*
touch "$stamp"
echo "collections: community.docker and its dependencies unpacked from ansible $ansible_wheel_version"
