# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Downtime of a change on the demo target, as clients see it: a good change, and a bad one that is rolled back.

Needs the demo deployed (`make demo`). A prober thread asks GET https://127.0.0.1:8000/v1/models (the front, the
demo's CA, the demo's key) every --period seconds while `oci-vllm deploy -i inventory/demo -e ...` runs, and records
when the answer stops and starts being 200 with the expected model. Downtime = the longest stretch without it.

Runs, in this process and order:
  baseline  `docker restart` of the serving container (the floor: vLLM's own start on this machine)
  good      a change that replaces the container (vllm_server_max_model_len 512 -> 384), then back to the demo's 512
  bad       vllm_server_extra_args [--quantization, awq]: the new vLLM exits at start, the role puts the old back
Prints each downtime and its ratio to the baseline. Asserts nothing about wall time; exits 0 unless a run ends in the
wrong state (the bad change must exit 2 and leave the old model served).
Usage: .venv/bin/python benchmarks/bench_rollout.py [--period 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("OCI_VLLM_CACHE") or "/var/tmp/oci-vllm")
OCI_VLLM = str(Path(sys.executable).parent / "oci-vllm")
URL = "https://127.0.0.1:8000/v1/models"
SERVED = "mistralai/Mistral-7B-Instruct-v0.2"
CONTAINER = "oci-vllm-demo"


class Prober(threading.Thread):
    def __init__(self, period: float) -> None:
        super().__init__(daemon=True)
        self.period = period
        self.key = (CACHE / "demo/control-node/api_key").read_text().strip()
        self.ctx = ssl.create_default_context(cafile=str(CACHE / "demo/control-node/ca/ca.crt"))
        self.samples: List[Tuple[float, bool]] = []
        self.stop = threading.Event()

    def serving(self) -> bool:
        request = urllib.request.Request(URL, headers={"Authorization": "Bearer " + self.key})
        try:
            with urllib.request.urlopen(request, timeout=2, context=self.ctx) as answer:
                return SERVED in [m["id"] for m in json.load(answer)["data"]]
        except (OSError, ValueError, KeyError):
            return False

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), self.serving()))
            time.sleep(self.period)

    def downtime(self) -> float:
        longest, down_since = 0.0, None
        for at, up in self.samples:
            if not up and down_since is None:
                down_since = at
            elif up and down_since is not None:
                longest, down_since = max(longest, at - down_since), None
        if down_since is not None:
            longest = max(longest, self.samples[-1][0] - down_since)
        return longest


def measured(period: float, action) -> Tuple[float, int, str]:
    prober = Prober(period)
    if not prober.serving():
        raise SystemExit("the demo endpoint does not serve %s at %s: run `make demo` first" % (SERVED, URL))
    prober.start()
    rc, out = action()
    deadline = time.monotonic() + 300  # after the command: until it serves again (or give up)
    while time.monotonic() < deadline and not prober.serving():
        time.sleep(period)
    time.sleep(1)
    prober.stop.set()
    prober.join()
    return prober.downtime(), rc, out


def deploy(extra: dict):
    def run() -> Tuple[int, str]:
        done = subprocess.run(
            [OCI_VLLM, "deploy", "-i", "inventory/demo", "-q", "-e", json.dumps(extra)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    return run


def restart() -> Tuple[int, str]:
    done = subprocess.run(["docker", "restart", CONTAINER], capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", type=float, default=0.1)
    args = parser.parse_args()
    results = []
    base, rc, out = measured(args.period, restart)
    if rc != 0:
        raise SystemExit("docker restart failed: " + out)
    results.append(("baseline: docker restart", base, rc))
    good, rc, out = measured(args.period, deploy({"vllm_server_max_model_len": 384}))
    results.append(("good change (max_model_len 512 -> 384)", good, rc))
    back, rc_back, _back_out = measured(args.period, deploy({}))
    results.append(("good change back (384 -> 512)", back, rc_back))
    bad, rc_bad, out_bad = measured(args.period, deploy({"vllm_server_extra_args": ["--quantization", "awq"]}))
    results.append(("bad change, rolled back", bad, rc_bad))
    print("%-42s %10s %8s %4s" % ("run", "downtime s", "x base", "rc"))
    for name, seconds, code in results:
        print("%-42s %10.1f %8.2f %4d" % (name, seconds, seconds / base if base else float("nan"), code))
    ok = rc == 0 and rc_back == 0 and rc_bad == 2 and "ROLLED BACK" in out_bad
    outcome = "OK (exit 2, ROLLED BACK, old model served)" if ok else "UNEXPECTED:\n" + out_bad[-2000:]
    print("rollback outcome:", outcome)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
