#!/usr/bin/env bash
# Run nvidia_driver for real on a borrowed GPU host (no Docker, no systemd, no network there; see README.md).
#   tests/realhost/run.sh OUTDIR        (ansible-core and its pure-Python wheels in .whl/, carried with the tree)
# Writes OUTDIR/commands.txt (the host's answers to the commands the roles run, golden-data format) and one log per run.
# Safe on a shared host: reboot policy never in every normal run; check mode shows what the default policy would do.
set -uo pipefail
out=${1:?usage: run.sh OUTDIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"

capture() {  # golden-data block: the command, its output, its exit status
  { echo "### $1"; bash -c "$1" 2>&1; echo "### rc=$?"; echo; } >>"$out/commands.txt"
}
echo "# Real GPU host, read $(date -u +%F) by tests/realhost/run.sh. Each block: the command, its output, its exit status." >"$out/commands.txt"
export PATH="$PATH:/usr/local/nvidia/bin"
capture 'cat /etc/os-release | grep -E "^(VERSION_ID|VERSION_CODENAME)="'
capture 'uname -r'
capture 'cat /sys/module/nvidia/version'
capture 'cat /proc/driver/nvidia/version'
capture 'command -v nvidia-smi'
capture 'nvidia-smi --query-gpu=index,name,driver_version,pci.bus_id,memory.total --format=csv,noheader,nounits'
capture 'nvidia-smi -L'
capture 'nvidia-smi --query-gpu=index,name --format=csv,noheader --id=7'
capture "dpkg-query -W -f='\${db:Status-Abbrev}\t\${Package}\t\${Version}\n' 'nvidia-*' 'libnvidia-*' 'cuda-drivers*' 'linux-modules-nvidia-*'"
capture 'python3 -c "import apt"'
capture 'ls /var/run/reboot-required'

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$repo"/.whl/*.whl || exit 1
export PYTHONPATH=/tmp/site LC_ALL=C.UTF-8 ANSIBLE_CONFIG="$repo/tests/realhost/ansible.cfg" ANSIBLE_FORCE_COLOR=0
mkdir -p /tmp/ac/ansible_collections/oci_gpu
ln -sfn "$repo" /tmp/ac/ansible_collections/oci_gpu/vllm
export ANSIBLE_COLLECTIONS_PATH=/tmp/ac
inv=(-i 'localhost,' -c local -e ansible_python_interpreter="$(command -v python3)")

play() {  # NAME ARGS...: one ansible-playbook run, logged, timed
  local name=$1 start rc
  shift
  start=$(date +%s%N)
  python3 -m ansible.cli.playbook "${inv[@]}" "$@" >"$out/$name.log" 2>&1
  rc=$?
  printf '%-14s rc=%s %5d ms  %s\n' "$name" "$rc" "$(( ($(date +%s%N) - start) / 1000000 ))" \
    "$(grep -E '^localhost +:' "$out/$name.log" | tr -s ' ')" | tee -a "$out/summary.txt"
}
role="$repo/tests/realhost/nvidia_driver.yml"
play check-auto "$role" --check -e nvidia_driver_branch=580 -e nvidia_driver_expected_gpus=1
play run-580 "$role" -e nvidia_driver_branch=580 -e nvidia_driver_expected_gpus=1 -e nvidia_driver_reboot_policy=never
play rerun-580 "$role" -e nvidia_driver_branch=580 -e nvidia_driver_expected_gpus=1 -e nvidia_driver_reboot_policy=never
play run-570-auto "$role" -e nvidia_driver_branch=570 -e nvidia_driver_expected_gpus=1 -e nvidia_driver_reboot_policy=never
play run-570-keep "$role" -e nvidia_driver_branch=570 -e nvidia_driver_other_branch=keep -e nvidia_driver_expected_gpus=1 -e nvidia_driver_reboot_policy=never
play ct-gpus "$repo/tests/realhost/container_toolkit_gpus.yml"
# The package resolver, read-only, as the role would call it for each source on this host (whose apt lists may be empty).
for source in ubuntu cuda; do
  python3 -m ansible.cli.adhoc "${inv[@]}" localhost -m oci_gpu.vllm.nvidia_driver_packages \
    -a "source=$source branch=580" >"$out/packages-$source.log" 2>&1
  echo "packages-$source rc=$?" | tee -a "$out/summary.txt"
done
exit 0
