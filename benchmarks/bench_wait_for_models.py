# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Readiness and crash detection delay of oci_gpu.vllm.wait_for_models vs an Ansible `uri` + `until` loop.

(a) readiness, direct: a real server process on 127.0.0.1 starts listening after a random delay (vLLM binds its port
    but listens only once its engine is up) and serves /v1/models with a bearer key.
(a') readiness, behind a front: the server listens at once but answers 502 for a random time (nginx in front of a
    vLLM that does not listen yet), then serves. In both, delay = moment the waiter returns - moment the server
    served (CLOCK_MONOTONIC is system-wide, so both processes read the same clock), and the stand-in server counts
    the requests it received before it served: requests/s sent to the server while waiting.
(b) crash: a real Docker container dies after a random delay while nothing listens on the URL (as vLLM dying
    during model load). Delay = moment the waiter gave up - the engine's State.FinishedAt.

Ours: the module's logic (ModelWaiter from plugins/module_utils) called in this process, at the module's defaults
and at its old default (one poll every 2 s whatever the server does).
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
import resource
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
    DEFAULT_INTERVAL,
    DEFAULT_REFUSED_INTERVAL,
    ContainerFailed,
    ModelWaiter,
    WaitTimedOut,
)

MODEL = "mistralai/Mistral-7B-Instruct-v0.2"
KEY = "bench-key-not-a-secret"
CRASH_IMAGE = "oci-vllm-test/ubuntu:22.04"

# A stand-in for vLLM's HTTP surface only: refuses connections (nothing listens) for `refuse_for` s, then listens and
# answers 502 for `not_ready_for` s (a front whose upstream does not listen yet), then serves /v1/models (key required)
# and /version. Prints when it listened and served, then one line per request it received.
SERVER_CODE = r"""
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, refuse_for, not_ready_for = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
model, key = sys.argv[4], sys.argv[5]
lock = threading.Lock()
def say(line):
    with lock:
        sys.stdout.write(line + "\n"); sys.stdout.flush()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        now = time.monotonic()
        if self.path == "/version":
            status, body = 200, {"version": "bench-standin"}
        elif self.headers.get("Authorization") != "Bearer " + key:
            status, body = 401, {"error": "Unauthorized"}
        elif now < ready_at:
            status, body = 502, {"error": "Bad Gateway"}
        else:
            status, body = 200, {"object": "list", "data": [{"id": model, "object": "model"}]}
        data = json.dumps(body).encode()
        self.send_response(status); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers()
        self.wfile.write(data)
        say("request %r %s %d" % (now, self.path, status))
time.sleep(refuse_for)
httpd = ThreadingHTTPServer(("127.0.0.1", port), H)
listening = time.monotonic()
ready_at = listening + not_ready_for
say("listening %r" % listening)
say("ready %r" % ready_at)
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


def uri_until(url: str, retries: int, delay: float) -> int:
    """Baseline: `uri` + `until: model in json.data | map(attribute='id')`, `retries`, `delay`.

    Returns the number of attempts when the model was seen, 0 when the retries ran out.
    """
    env = dict(os.environ, BENCH_KEY=KEY)
    for attempt in range(retries + 1):
        if subprocess.run([sys.executable, "-c", URI_ATTEMPT_CODE, url, MODEL], env=env, check=False).returncode == 0:
            return attempt + 1
        if attempt < retries:
            time.sleep(delay)
    return 0


# The module's defaults, and its old default (interval 2, no faster polling while refused).
DEFAULTS: Dict[str, float] = {}
OLD_DEFAULT = {"interval": 2.0, "refused_interval": 2.0}


def ours(url: str, timeout: float, container: Optional[str] = None, **schedule: float) -> str:
    try:
        ModelWaiter(url=url, model=MODEL, api_key=KEY, timeout=timeout, container=container, **schedule).run()
        return "ready"
    except ContainerFailed:
        return "container failed"
    except WaitTimedOut:
        return "timed out"


def ours_attempts(url: str, **schedule: float) -> int:
    return int(ModelWaiter(url=url, model=MODEL, api_key=KEY, timeout=60, **schedule).run()["attempts"])


def real_ansible_uri_until(url: str, workdir: Path) -> bool:
    """Run the real `ansible-playbook` loop; its start-up happens while the server is not yet listening."""
    (workdir / "play.yml").write_text(PLAYBOOK)
    (workdir / "vars.json").write_text(json.dumps({"bench_url": url, "bench_key": KEY, "bench_model": MODEL}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(workdir / "none.cfg"), ANSIBLE_LOCALHOST_WARNING="false")
    env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-e", "@vars.json", "play.yml"]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, check=False).returncode == 0


class Trial:
    """One readiness trial: delay after the server served, the server's count of requests before that, client cost."""

    def __init__(self, delay: float, waited: float, server_requests: int, attempts: int, cpu: float) -> None:
        self.delay = delay
        self.waited = waited  # from the waiter's start to the moment the server served
        self.server_requests = server_requests
        self.attempts = attempts
        self.cpu = cpu


def readiness_trial(refuse_for: float, not_ready_for: float, wait: Callable[[str], int]) -> Trial:
    port = free_port()
    args = [str(port), "%.3f" % refuse_for, "%.3f" % not_ready_for, MODEL, KEY]
    server = subprocess.Popen([sys.executable, "-c", SERVER_CODE, *args], stdout=subprocess.PIPE, text=True)
    try:
        cpu_before = time.process_time() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
        cpu_before += resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime
        started = time.monotonic()
        attempts = wait("http://127.0.0.1:%d" % port)
        returned = time.monotonic()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # uri attempts, not the server (not reaped yet)
        cpu = time.process_time() + children.ru_utime + children.ru_stime - cpu_before
    finally:
        server.kill()
        output, _err = server.communicate()
    lines = [line.split() for line in output.splitlines()]
    ready_at = next(float(fields[1]) for fields in lines if fields[0] == "ready")
    before = sum(1 for fields in lines if fields[0] == "request" and float(fields[1]) < ready_at)
    return Trial(returned - ready_at, ready_at - started, before, attempts, cpu)


def summary(values: List[float]) -> str:
    return "mean %6.2f s  median %6.2f s  min %5.2f  max %5.2f" % (
        statistics.mean(values),
        statistics.median(values),
        min(values),
        max(values),
    )


def report(name: str, trials: List[Trial]) -> None:
    waited = sum(t.waited for t in trials)
    spent = sum(t.waited + t.delay for t in trials)
    print(
        "  %-32s median %5.2f s  mean %5.2f s  max %5.2f | server %5.2f req/s | client %5.2f polls/s, CPU %5.1f%%"
        % (
            name,
            statistics.median(t.delay for t in trials),
            statistics.mean(t.delay for t in trials),
            max(t.delay for t in trials),
            sum(t.server_requests for t in trials) / waited,
            sum(t.attempts for t in trials) / spent,
            100 * sum(t.cpu for t in trials) / spent,
        )
    )


def bench_readiness(trials: int, rng: random.Random, real_ansible: bool) -> None:
    refuse = [rng.uniform(1.0, 4.0) for _trial in range(trials)]
    not_ready = [rng.uniform(1.0, 4.0) for _trial in range(trials)]
    ours_default = "ours defaults (%g s / %g s refused)" % (DEFAULT_INTERVAL, DEFAULT_REFUSED_INTERVAL)
    variants: Dict[str, Callable[[str], int]] = {
        ours_default: lambda url: ours_attempts(url, **DEFAULTS),
        "ours interval=2 (old default)": lambda url: ours_attempts(url, **OLD_DEFAULT),
        "uri+until delay=2": lambda url: uri_until(url, retries=30, delay=2),
        "uri+until delay=10": lambda url: uri_until(url, retries=6, delay=10),
    }
    print(
        "\n(a) readiness, direct: nothing listens for U(1,4) s, then the model is served; %d trials per variant."
        "\n    delay = waiter returned - server served; server req/s = requests the server received before it served"
        " / time waited; client polls/s and CPU over the whole wait (a refused poll reaches no server process)" % trials
    )
    results: Dict[str, List[Trial]] = {}
    for name, wait in variants.items():
        results[name] = [readiness_trial(r, 0, wait) for r in refuse]
        report(name, results[name])
    if real_ansible:
        # ansible-playbook needs a few seconds to start: the server listens 5 s later than in the other variants.
        name = "ansible-playbook uri+until delay=2"
        with tempfile.TemporaryDirectory(prefix="wfm-bench-") as tmp:
            results[name] = [
                readiness_trial(r + 5, 0, lambda url: int(real_ansible_uri_until(url, Path(tmp)))) for r in refuse
            ]
        report(name + " *", results[name])
        print("    * includes playbook shutdown; polls/s counts only the successful run")
    ratios(results, ours_default, ["ours interval=2 (old default)", "uri+until delay=2", "uri+until delay=10"])
    ratios(results, ours_default, ["ansible-playbook uri+until delay=2"])

    print(
        "\n(a') readiness behind a front: the server answers 502 for U(1,4) s (nginx while vLLM does not listen), then"
        " serves; %d trials per variant" % trials
    )
    front: Dict[str, List[Trial]] = {}
    for name in (ours_default, "ours interval=2 (old default)", "uri+until delay=2"):
        front[name] = [readiness_trial(0, n, variants[name]) for n in not_ready]
        report(name, front[name])
    ratios(front, ours_default, ["ours interval=2 (old default)", "uri+until delay=2"])


def ratios(results: Dict[str, List[Trial]], ours_name: str, others: List[str]) -> None:
    ours_mean = statistics.mean(t.delay for t in results[ours_name])
    for name in others:
        if name in results:
            ratio = statistics.mean(t.delay for t in results[name]) / ours_mean
            print("  ratio %-34s / ours defaults: %5.2fx (mean delay)" % (name, ratio))


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
        crash_trial("%s-ours-%d" % (tag, i), d, lambda url, name: ours(url, timeout=budget, container=name))
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
    print("  %-34s %s" % ("ours defaults + container watch", summary(ours_delays)))
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
