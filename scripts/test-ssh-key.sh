#!/usr/bin/env bash
# The SSH key pair tests log in to the test-host containers with (as user ubuntu, like on OCI). Made once; prints the
# private key's path. A test bind-mounts "<path>.pub" read-only onto /home/ubuntu/.ssh/authorized_keys.
set -euo pipefail

dir=${OCI_VLLM_CACHE:-/var/tmp/oci-vllm}/test-ssh
key=$dir/id_ed25519

if ! command -v ssh-keygen >/dev/null 2>&1 || ! command -v ssh >/dev/null 2>&1; then
  echo "test-ssh-key: installing openssh-client" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openssh-client >/dev/null
fi
if [ ! -s "$key" ] || [ ! -s "$key.pub" ]; then
  install -d -m 0700 "$dir"
  rm -f "$key" "$key.pub"
  ssh-keygen -q -t ed25519 -N '' -C oci-vllm-test -f "$key"
fi
chmod 0600 "$key"
chmod 0644 "$key.pub"
echo "$key"
