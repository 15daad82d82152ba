# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Bare host to the first generated token: downloads in series vs overlapped with the driver (issue 18).

A fresh OCI-like test host (systemd, SSH as ubuntu, Docker inside) per run, reached over SSH; the real roles from
site.yml's deploy play in its order (benchmarks/files/bare_host.yml), with:
- the image pulled by digest from a real registry (docker-registry, TLS, login) and the model downloaded with a token
  from the hub emulator, both on the control node (tests/functional/host_sources.py);
- the host's link limited with `tc tbf` on its veth (what the host downloads: registry and hub alike), and the hub's
  file bodies further limited to --hub-rate (a hub across the internet, a registry in the region);
- the driver's install and reboot, which a container cannot do, stood in for by a pause of --driver-seconds after the
  (stand-in) driver role. NOT measured on OCI here: pass the figure you measure on your shape.
Serial: oci_vllm_overlap=false (the pull and download in vllm_server, after the driver and the toolkit). Overlapped:
container_toolkit's engine entry point sets up Docker first, then vllm_server's prefetch entry point starts the pull
and the download in the background, then the driver (site.yml's order with oci_vllm_overlap).

Time = ansible-playbook start to the end of the run (its smoke test generates the first tokens through the front),
then one /v1/completions call is timed on top. Prints both and the ratio; asserts nothing.
Usage (root): .venv/bin/python benchmarks/bench_bare_host.py [--link-mbit 400] [--hub-rate-kib 64] [--driver-seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/functional"))

from host_sources import MODEL, REGISTRY_PORT, host_vars, serve_repo, standin_repo, start_hub, tiny_model  # noqa: E402
from local_registry import push_once, start_registry  # noqa: E402
from oci_like_hosts import docker_bridge_gateway, remove_host, ssh_key, start_host, wait_for_ssh  # noqa: E402

from oci_vllm import api  # noqa: E402

VLLM_IMAGE = os.environ.get("VLLM_CPU_IMAGE", "oci-vllm-test/vllm-cpu:0.32.0")
HOST = "bench-bare-host"
PROFILE_LINE = re.compile(r"^(.+?) -+ (\d+\.\d+)s$", re.MULTILINE)  # ansible.posix.profile_tasks' summary


def _limit_link(container: str, mbit: float) -> str:
    """tc tbf on the host side of the container's veth: everything the host downloads passes it."""
    iflink = subprocess.run(["docker", "exec", container, "cat", "/sys/class/net/eth0/iflink"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.splitlines()
    veth = next(line.split(": ")[1].split("@")[0] for line in links if line.split(": ")[0] == iflink)
    subprocess.run(["tc", "qdisc", "replace", "dev", veth, "root", "tbf", "rate", "%gmbit" % mbit,
                    "burst", "256kb", "latency", "200ms"], check=True)  # fmt: skip
    return veth


def _first_token(ip: str, home: Path) -> float:
    key = (home / ".oci-vllm" / "vllm_server_api_key").read_text().strip()
    context = ssl.create_default_context(cafile=str(home / ".oci-vllm" / "ca" / "ca.crt"))
    body = json.dumps(api.seed().body("completions", MODEL, max_tokens=1)).encode()
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    request = urllib.request.Request("https://%s:8000/v1/completions" % ip, data=body, method="POST", headers=headers)
    start = time.monotonic()
    with urllib.request.urlopen(request, context=context, timeout=120) as response:
        assert json.loads(response.read())["choices"][0]["text"] is not None
    return time.monotonic() - start


def _one_run(work: Path, overlap: bool, args, extra: dict, key: Path) -> dict:
    host = start_host(HOST, "noble", key, docker_inside=True)
    try:
        wait_for_ssh(host)
        _limit_link(HOST, args.link_mbit)
        (work / "inventory.yml").write_text(json.dumps({"bench": {"hosts": {host.ip: {"ansible_user": "ubuntu"}}}}))
        home = work / ("home-%s" % ("overlap" if overlap else "serial"))
        home.mkdir()
        vars_file = work / "vars.yml"
        vars_file.write_text(
            json.dumps(dict(extra, oci_vllm_overlap=overlap, bench_driver_seconds=args.driver_seconds))
        )
        env = dict(os.environ, HOME=str(home), ANSIBLE_PRIVATE_KEY_FILE=str(key), ANSIBLE_NOCOLOR="1")
        env.update(ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="8")
        argv = [str(Path(sys.executable).with_name("ansible-playbook")), str(ROOT / "benchmarks/files/bare_host.yml"),
                "-i", str(work / "inventory.yml"), "-e", "@%s" % vars_file]  # fmt: skip
        start = time.monotonic()
        run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        playbook = time.monotonic() - start
        if run.returncode != 0:
            raise SystemExit("run failed (overlap=%s):\n%s" % (overlap, run.stdout[-4000:]))
        call = _first_token(host.ip, home)
        rows = PROFILE_LINE.findall(run.stdout.rsplit("PLAY RECAP", 1)[-1])
        slowest = ["%7s s  %s" % (seconds, name.strip()[:110]) for name, seconds in rows]
        return {"playbook": playbook, "first_call": call, "total": playbook + call, "slowest": slowest}
    finally:
        remove_host(HOST)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--link-mbit", type=float, default=400, help="the host's link, Mbit/s (tc tbf)")
    parser.add_argument("--hub-rate-kib", type=float, default=64, help="the hub's file bodies, KiB/s")
    parser.add_argument("--driver-seconds", type=float, default=60, help="stands for the driver install and reboot")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (Docker, tc)")
    with tempfile.TemporaryDirectory(prefix="bench-bare-host-") as tmp:
        work = Path(tmp)
        gateway = docker_bridge_gateway()
        token = "hf_bench%s" % os.urandom(12).hex()
        repo = serve_repo(standin_repo(work), gateway)
        registry = start_registry(work / "registry", gateway, REGISTRY_PORT, VLLM_IMAGE)
        hub = start_hub(work, gateway, token, registry, rate=args.hub_rate_kib * 1024)
        try:
            image = push_once(registry, VLLM_IMAGE, "0.32.0-cpu")
            extra = host_vars(gateway, registry, image, token)
            blobs = sum(f.stat().st_size for f in (registry.storage / "docker").rglob("data"))
            model = sum(f.stat().st_size for f in tiny_model().iterdir() if f.is_file())
            print("link %g Mbit/s (tc tbf on the host's veth); hub bodies %g KiB/s; driver+reboot stand-in %g s"
                  % (args.link_mbit, args.hub_rate_kib, args.driver_seconds))  # fmt: skip
            print("image in the registry: %.2f GB compressed; model files: %.1f MB" % (blobs / 1e9, model / 1e6))
            results = {}
            for overlap in (False, True):
                label = "overlapped" if overlap else "serial"
                (work / label).mkdir()
                results[label] = _one_run(work / label, overlap, args, extra, ssh_key())
                r = results[label]
                print("%-10s bare host -> end of site run %.0f s, + first call %.2f s = %.0f s; slowest tasks:"
                      % (label, r["playbook"], r["first_call"], r["total"]))  # fmt: skip
                print("\n".join("    " + line for line in r["slowest"]))
            print("serial / overlapped: %.2f" % (results["serial"]["total"] / results["overlapped"]["total"]))
        finally:
            hub.terminate()
            registry.stop()
            repo.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
