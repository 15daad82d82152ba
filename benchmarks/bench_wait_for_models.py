# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Readiness and crash detection delay of oci_gpu.vllm.wait_for_models vs an Ansible `uri` + `until` loop.

(a) readiness: a real server process on 127.0.0.1 starts listening after a random delay (as vLLM does once its
    engine is up) and serves /v1/models with a bearer key. Delay = moment the waiter returns - moment the server
    listened (CLOCK_MONOTONIC is system-wide, so both processes read the same clock).
(b) crash: a real Docker container dies after a random delay while nothing listens on the URL (as vLLM dying
    during model load). Delay = moment the waiter gave up - the engine's State.FinishedAt.

Ours: the module's logic (ModelWaiter from plugins/module_utils) called in this process.
Baseline: what `ansible.builtin.uri` with `until`/`retries`/`delay` does: every attempt is a fresh module run, i.e. a
new Python process importing ansible.module_utils.urls and making one fresh request, then a fixed `delay` sleep. A
real Ansible run adds task overhead (connection, templating, result handling) on top, so the baseline is generous.

Prints figures and ratios (baseline / ours); asserts nothing about wall time.
Usage: .venv/bin/python benchmarks/bench_wait_for_models.py [--trials N] [--seed S] [--skip-crash]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".collections"))  # .collections/ansible_collections/oci_gpu/vllm -> this checkout

from ansible_collections.oci_gpu.vllm.plugins.module_utils._wait_for_models import (  # noqa: E402
    ContainerFailed,
    ModelWaiter,
    WaitTimedOut,
)

MODEL = "mistralai/Mistral-7B-Instruct-v0.2"
KEY = "bench-key-not-a-secret"
CRASH_IMAGE = "oci-vllm-test/ubuntu:22.04"

# A stand-in for vLLM's HTTP surface only: sleeps, then listens and serves /v1/models (key required) and /version.
SERVER_CODE = r"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, delay, model, key = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/version":
            status, body = 200, {"version": "bench-standin"}
        elif self.headers.get("Authorization") != "Bearer " + key:
            status, body = 401, {"error": "Unauthorized"}
        else:
            status, body = 200, {"object": "list", "data": [{"id": model, "object": "model"}]}
        data = json.dumps(body).encode()
        self.send_response(status); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers()
        self.wfile.write(data)
time.sleep(delay)
httpd = ThreadingHTTPServer(("127.0.0.1", port), H)
print(time.monotonic(), flush=True)
httpd.serve_forever()
"""

# One `uri` module run: fresh interpreter, ansible.module_utils.urls, one request, success iff the model is listed.
URI_ATTEMPT_CODE = r"""
import json, os, sys
from ansible.module_utils.urls import open_url
try:
    r = open_url(sys.argv[1] + "/v1/models", headers={"Authorization": "Bearer " + os.environ["BENCH_KEY"]},
                 timeout=10)
    sys.exit(0 if sys.argv[2] in [m["id"] for m in json.load(r)["data"]] else 1)
except Exception:
    sys.exit(1)
"""


# The real thing, for --real-ansible: the loop a playbook writes without this module.
PLAYBOOK = """
- name: Baseline readiness loop
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Wait for the model with uri + until
      ansible.builtin.uri:
        url: "{{ bench_url }}/v1/models"
        headers:
          Authorization: "Bearer {{ bench_key }}"
      register: models
      until: models.json is defined and bench_model in (models.json.data | map(attribute='id'))
      retries: 30
      delay: 2
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uri_until(url: str, retries: int, delay: float) -> bool:
    """Baseline: `uri` + `until: model in json.data | map(attribute='id')`, `retries`, `delay`."""
    env = dict(os.environ, BENCH_KEY=KEY)
    for attempt in range(retries + 1):
        if subprocess.run([sys.executable, "-c", URI_ATTEMPT_CODE, url, MODEL], env=env, check=False).returncode == 0:
            return True
        if attempt < retries:
            time.sleep(delay)
    return False


def ours(url: str, interval: float, timeout: float, container: Optional[str] = None) -> str:
    try:
        ModelWaiter(url=url, model=MODEL, api_key=KEY, timeout=timeout, interval=interval, container=container).run()
        return "ready"
    except ContainerFailed:
        return "container failed"
    except WaitTimedOut:
        return "timed out"


def real_ansible_uri_until(url: str, workdir: Path) -> bool:
    """Run the real `ansible-playbook` loop; its start-up happens while the server is not yet listening."""
    (workdir / "play.yml").write_text(PLAYBOOK)
    (workdir / "vars.json").write_text(json.dumps({"bench_url": url, "bench_key": KEY, "bench_model": MODEL}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(workdir / "none.cfg"), ANSIBLE_LOCALHOST_WARNING="false")
    env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-e", "@vars.json", "play.yml"]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, check=False).returncode == 0


def readiness_trial(ready_after: float, wait: Callable[[str], object]) -> float:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_CODE, str(port), str(ready_after), MODEL, KEY], stdout=subprocess.PIPE, text=True
    )
    try:
        wait("http://127.0.0.1:%d" % port)
        returned = time.monotonic()
        assert server.stdout is not None
        listening = float(server.stdout.readline())
        return returned - listening
    finally:
        server.kill()
        server.wait()


def summary(values: List[float]) -> str:
    return "mean %6.2f s  median %6.2f s  min %5.2f  max %5.2f" % (
        statistics.mean(values),
        statistics.median(values),
        min(values),
        max(values),
    )


def bench_readiness(trials: int, rng: random.Random, real_ansible: bool) -> None:
    delays = [rng.uniform(1.0, 4.0) for _trial in range(trials)]
    variants: Dict[str, Callable[[str], object]] = {
        "ours interval=2 (module default)": lambda url: ours(url, interval=2, timeout=60),
        "ours interval=0.5": lambda url: ours(url, interval=0.5, timeout=60),
        "uri+until delay=2": lambda url: uri_until(url, retries=30, delay=2),
        "uri+until delay=10": lambda url: uri_until(url, retries=6, delay=10),
    }
    print("\n(a) readiness detection delay: server listens after U(1,4) s; %d trials per variant" % trials)
    results: Dict[str, List[float]] = {}
    for name, wait in variants.items():
        results[name] = [readiness_trial(d, wait) for d in delays]
        print("  %-34s %s" % (name, summary(results[name])))
    if real_ansible:
        # ansible-playbook needs a few seconds to start: the server listens 5 s later than in the other variants.
        name = "ansible-playbook uri+until delay=2"
        with tempfile.TemporaryDirectory(prefix="wfm-bench-") as tmp:
            results[name] = [readiness_trial(d + 5, lambda url: real_ansible_uri_until(url, Path(tmp))) for d in delays]
        print("  %-34s %s  (includes playbook shutdown)" % (name, summary(results[name])))
    base = results["ours interval=2 (module default)"]
    for name in ("uri+until delay=2", "uri+until delay=10", "ansible-playbook uri+until delay=2"):
        if name not in results:
            continue
        ratio = statistics.mean(results[name]) / statistics.mean(base)
        print("  ratio %-20s / ours interval=2: %5.2fx (mean delay)" % (name, ratio))
    ratio = statistics.mean(results["uri+until delay=2"]) / statistics.mean(results["ours interval=0.5"])
    print("  ratio uri+until delay=2 / ours interval=0.5: %5.2fx (mean delay)" % ratio)


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


def crash_trial(name: str, crash_after: float, wait: Callable[[str, str], str]) -> float:
    script = "echo loading model; sleep %.2f; echo 'RuntimeError: engine died (bench)' >&2; exit 1" % crash_after
    docker("run", "-d", "--name", name, "--label", "oci-vllm-bench=wait_for_models", CRASH_IMAGE, "sh", "-c", script)
    try:
        outcome = wait("http://127.0.0.1:%d" % free_port(), name)
        returned = time.time()
        finished = json.loads(docker("inspect", name))[0]["State"]["FinishedAt"]
        # Docker prints nanoseconds; keep microseconds for fromisoformat.
        stamp = datetime.fromisoformat(finished[:26].rstrip("Z") + "+00:00").timestamp()
        print(
            "    %-30s crash after %.1f s -> %s, noticed %.2f s after the crash"
            % (name, crash_after, outcome, returned - stamp)
        )
        return returned - stamp
    finally:
        subprocess.run(["docker", "rm", "-f", name], check=False, capture_output=True)


def bench_crash(trials: int, rng: random.Random, budget_retries: int) -> None:
    if not shutil.which("docker") or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        print("\n(b) crash detection: skipped, no Docker engine")
        return
    delays = [rng.uniform(2.0, 5.0) for _trial in range(trials)]
    budget = budget_retries * 2
    print(
        "\n(b) crash detection delay: a real container (%s) exits after U(2,5) s; nothing listens on the URL"
        % CRASH_IMAGE
    )
    print(
        "    baseline budget: retries=%d delay=2 (~%d s); a real play uses 600-900 s, and the baseline's delay grows"
        " with it, ours does not" % (budget_retries, budget)
    )
    tag = "wfm-bench-%d" % os.getpid()
    ours_delays = [
        crash_trial("%s-ours-%d" % (tag, i), d, lambda url, name: ours(url, interval=2, timeout=budget, container=name))
        for i, d in enumerate(delays)
    ]
    base_delays = [
        crash_trial(
            "%s-uri-%d" % (tag, i),
            d,
            lambda url, name: "ready" if uri_until(url, retries=budget_retries, delay=2) else "timed out",
        )
        for i, d in enumerate(delays)
    ]
    print("  %-34s %s" % ("ours interval=2 + container watch", summary(ours_delays)))
    print("  %-34s %s" % ("uri+until delay=2", summary(base_delays)))
    print(
        "  ratio uri+until / ours: %5.1fx (mean delay)" % (statistics.mean(base_delays) / statistics.mean(ours_delays))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--crash-trials", type=int, default=3)
    parser.add_argument("--crash-budget-retries", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--skip-crash", action="store_true")
    parser.add_argument("--real-ansible", action="store_true", help="also time the real ansible-playbook loop")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(
        "wait_for_models benchmark (python %s, %d CPUs, seed %d)"
        % (sys.version.split()[0], os.cpu_count() or 0, args.seed)
    )
    bench_readiness(args.trials, rng, args.real_ansible)
    if not args.skip_crash:
        bench_crash(args.crash_trials, rng, args.crash_budget_retries)


if __name__ == "__main__":
    main()
