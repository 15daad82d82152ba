# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Inventory speed as users see it: `ansible-inventory -i x.oci_gpu.yml --list`, against the loopback OCI emulator.

For N instances over 5 compartments (one nested) and 2 regions, with emulated latency per request (default 50 ms),
the emulator in its own process and the real `oci` SDK, each figure is the median of --reps runs of the
`ansible-inventory --list` subprocess (output read and thrown away):
- floor: a one-host static YAML inventory (what ansible-inventory costs with nothing to do);
- same data, static: a YAML file holding exactly the hosts, groups and variables our plugin produced (what
  ansible-core itself costs to load and print this inventory, with no OCI and no plugin code);
- ours, cold: oci_gpu.vllm.oci_gpu with `regions: [all]`, no cache; its API calls counted by the emulator;
- ours, warm: the same with `cache: true` (jsonfile) after one run filled the cache (no API call);
- ours lean, cold / warm: the same two with `variables: [ansible_host]` (the plugin's opt-in for very large fleets:
  hosts and groups as by default, one variable per host), which shows what the other variables cost in ansible-core;
- CPU seconds by phase of the floor and of both warm runs (ansible-inventory's own entry point, timed around its
  parse, its flatten of each host's variables and its JSON dump): which part is the plugin's and which ansible-core's;
- naive: the per-host pattern of the usual OCI inventory plugin (ListInstances per compartment, then per instance,
  serially, ListVnicAttachments(instance_id) and GetVnic per attachment), measured in this process for the first
  --naive-cap hosts and EXTRAPOLATED linearly beyond (labelled); its call count is exact. Shown as API time only,
  next to ours measured the same way in this process (`fetch_inventory`), so the two strategies compare alone.
Prints seconds, API calls, and ratios; asserts nothing about wall time (DEVELOPERS.md).
Needs root (adds /etc/hosts entries for the emulated endpoints, listens on 127.0.0.72:443).
Usage: .venv/bin/python benchmarks/bench_inventory.py [--sizes 100,2000,20000] [--latency 0.05] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "functional"))

from oci_emulator.inventory_run import ensure_collection_loader, write_config  # noqa: E402

ensure_collection_loader()

from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_clients import SdkClients  # noqa: E402
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_fetch import (  # noqa: E402
    FetchOptions,
    fetch_inventory,
)
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_hosts import (  # noqa: E402
    Filters,
    instance_selected,
)
from oci_emulator.fleet import build_fleet  # noqa: E402
from oci_emulator.harness import Harness  # noqa: E402

DOMAIN = "ocigpu-bench.test"
ADDRESS = "127.0.0.72"
ANSIBLE_INVENTORY = str(ROOT / ".venv" / "bin" / "ansible-inventory")


def fmt_calls(calls: Dict[str, int]) -> str:
    return "%d (%s)" % (sum(calls.values()), ", ".join("%s %d" % kv for kv in sorted(calls.items())))


class Runner:
    """Runs `ansible-inventory -i SOURCE --list` as users do, with the emulator's environment."""

    def __init__(self, harness: Harness, workdir: Path):
        self.harness = harness
        self.workdir = workdir
        self.env = dict(os.environ, **harness.env, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))

    def once(self, source: Path) -> Tuple[float, bytes, Dict[str, int]]:
        self.harness.reset_calls()
        start = time.perf_counter()
        proc = subprocess.run(
            [ANSIBLE_INVENTORY, "-i", str(source), "--list"],
            env=self.env, cwd=str(self.workdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        # The fleet generator repeats addresses across regions above ~10,000 instances (as overlapping VCNs do): the
        # plugin warns and names those hosts by OCID. Any other warning is a failure of the run.
        warnings = [w for w in proc.stderr.decode().split("[WARNING]")[1:] if "duplicate host names" not in w]
        if proc.returncode != 0 or warnings:
            raise RuntimeError("ansible-inventory -i %s failed or warned:\n%s" % (source, proc.stderr.decode()[-2000:]))
        return elapsed, proc.stdout, self.harness.calls()

    def median(self, source: Path, reps: int) -> Tuple[float, List[float], bytes, Dict[str, int]]:
        times: List[float] = []
        output, calls = b"", {}  # type: Tuple[bytes, Dict[str, int]]
        for _rep in range(reps):
            elapsed, output, calls = self.once(source)
            times.append(elapsed)
        return statistics.median(times), times, output, calls


# ansible-inventory's own entry point, with the CPU time of its phases written to stderr as a last line of JSON.
PHASES = """
import json, sys, time
from ansible.cli.inventory import InventoryCLI, main
from ansible.inventory.manager import InventoryManager
spent = {"start-up": time.process_time()}
def timed(name, function):
    def run(*args, **kwargs):
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.process_time() - start
    return run
InventoryManager.parse_sources = timed("parse (plugin, inventory)", InventoryManager.parse_sources)
InventoryCLI.json_inventory = timed("flatten (vars per host)", InventoryCLI.json_inventory)
InventoryCLI.dump = staticmethod(timed("JSON dump", InventoryCLI.dump))
sys.argv = ["ansible-inventory"] + sys.argv[1:]
try:
    main()
finally:
    spent["total"] = time.process_time()
    sys.stderr.write("\\n" + json.dumps(spent) + "\\n")
"""


def phases(runner: Runner, source: Path, reps: int) -> Dict[str, float]:
    """Median CPU seconds per phase of `ansible-inventory -i SOURCE --list` (start-up, parse, flatten, dump)."""
    runs: List[Dict[str, float]] = []
    for _rep in range(reps):
        proc = subprocess.run(
            [sys.executable, "-c", PHASES, "-i", str(source), "--list"],
            env=runner.env, cwd=str(runner.workdir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError("phases of %s failed:\n%s" % (source, proc.stderr.decode()[-2000:]))
        runs.append(json.loads(proc.stderr.decode().strip().splitlines()[-1]))
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def plain(value: Any) -> Any:
    """--list output back to plain data: {"__ansible_unsafe": "x"} -> "x"."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def same_data_static(listing: bytes, path: Path) -> Path:
    """A YAML inventory with the hosts, group tree and (flattened) host variables of a --list output."""
    data = plain(json.loads(listing))
    hostvars = data.pop("_meta")["hostvars"]
    groups: Dict[str, Any] = {}
    for name, body in data.items():
        if name == "all":
            continue
        entry: Dict[str, Any] = {}
        if body.get("hosts"):
            entry["hosts"] = {h: None for h in body["hosts"]}
        if body.get("children"):
            entry["children"] = {c: None for c in body["children"]}
        groups[name] = entry
    everyone = {"hosts": dict(hostvars), "children": dict(groups)}
    # yaml safe_dump with the C emitter when present; ansible reads it with its own loader
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    path.write_text(yaml.dump({"all": everyone}, Dumper=dumper, default_flow_style=False, sort_keys=False))
    return path


def run_naive(harness: Harness, state: Dict[str, Any], cap: int) -> Dict[str, Any]:
    """Per-host pattern, serial; stops after `cap` instances and extrapolates time (calls are counted exactly)."""
    clients = SdkClients(config_file=harness.env["OCI_CONFIG_FILE"])
    kwargs = clients.call_kwargs
    harness.reset_calls()
    start = time.perf_counter()
    selected: List[Tuple[str, Any]] = []
    for region in harness.regions:
        compute = clients.compute(region)
        for comp in [c["id"] for c in state["compartments"]] + [state["tenancy"]["id"]]:
            page: Optional[str] = None
            while True:
                extra: Dict[str, str] = {"page": page} if page else {}
                response = compute.list_instances(compartment_id=comp, limit=1000, **kwargs, **extra)
                for inst in response.data:  # JSON (our clients skip model building); camelCase keys
                    cfg = inst.get("shapeConfig") or {}
                    if instance_selected(inst["shape"], inst["lifecycleState"], cfg.get("gpus"),
                                         cfg.get("gpuDescription"), inst.get("freeformTags") or {},
                                         inst.get("definedTags") or {}, Filters()):  # fmt: skip
                        selected.append((region, inst))
                page = response.next_page
                if not page:
                    break
    listing_time = time.perf_counter() - start
    per_host_start = time.perf_counter()
    done = 0
    for region, inst in selected[:cap]:
        compute, network = clients.compute(region), clients.network(region)
        attachments = compute.list_vnic_attachments(
            compartment_id=inst["compartmentId"], instance_id=inst["id"], **kwargs
        ).data
        for att in attachments:
            network.get_vnic(vnic_id=att["vnicId"], **kwargs)
        done += 1
    per_host_time = time.perf_counter() - per_host_start
    measured_calls = harness.calls()
    attachments_per_instance: Dict[str, int] = {}
    for region in harness.regions:
        for att in state["vnicAttachments"][region]:
            attachments_per_instance[att["instanceId"]] = attachments_per_instance.get(att["instanceId"], 0) + 1
    exact_calls = {
        "ListInstances": measured_calls.get("ListInstances", 0),
        "ListVnicAttachments": len(selected),
        "GetVnic": sum(attachments_per_instance.get(inst["id"], 0) for _region, inst in selected),
    }
    per_host = per_host_time / max(done, 1)
    return {
        "hosts": len(selected),
        "measured_hosts": done,
        "time": listing_time + per_host * len(selected),
        "extrapolated": done < len(selected),
        "calls": exact_calls,
    }


def our_fetch(harness: Harness, reps: int) -> float:
    clients = SdkClients(config_file=harness.env["OCI_CONFIG_FILE"])
    times = []
    for _rep in range(reps):
        start = time.perf_counter()
        fetch_inventory(clients, FetchOptions(regions=("all",)))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(n: int, latency: float, cap: int, reps: int, static_max: int, workdir: Path) -> Dict[str, float]:
    state = build_fleet(n, n_compartments=5)
    harness = Harness(workdir, state, DOMAIN, ADDRESS, latency=latency, subprocess_mode=True)
    try:
        harness.apply_env()
        runner = Runner(harness, workdir)
        floor_src = workdir / "floor.yml"
        floor_src.write_text("all:\n  hosts:\n    one:\n      ansible_host: 127.0.0.1\n")
        cold_src = write_config(workdir / "cold.oci_gpu.yml", regions=["all"], cache=False)
        warm_src = write_config(
            workdir / "warm.oci_gpu.yml", regions=["all"], cache=True, cache_plugin="ansible.builtin.jsonfile",
            cache_connection=str(workdir / "cache"), cache_timeout=3600,
        )  # fmt: skip
        lean = {"variables": ["ansible_host"]}
        lean_cold_src = write_config(workdir / "lean-cold.oci_gpu.yml", regions=["all"], cache=False, **lean)
        lean_warm_src = write_config(
            workdir / "lean-warm.oci_gpu.yml", regions=["all"], cache=True, cache_plugin="ansible.builtin.jsonfile",
            cache_connection=str(workdir / "lean-cache"), cache_timeout=3600, **lean,
        )  # fmt: skip
        floor, floor_all, _out, _calls = runner.median(floor_src, reps)
        cold, cold_all, listing, cold_calls = runner.median(cold_src, reps)
        runner.once(warm_src)  # fills the cache
        warm, warm_all, _out, warm_calls = runner.median(warm_src, reps)
        lean_cold, lean_cold_all, lean_listing, lean_cold_calls = runner.median(lean_cold_src, reps)
        runner.once(lean_warm_src)
        lean_warm, lean_warm_all, _out, lean_warm_calls = runner.median(lean_warm_src, reps)
        lean_groups = {k: v for k, v in json.loads(lean_listing).items() if k != "_meta"}
        if lean_groups != {k: v for k, v in json.loads(listing).items() if k != "_meta"}:
            raise RuntimeError("variables: [ansible_host] changed the hosts or groups")
        static, static_all = float("nan"), []  # type: Tuple[float, List[float]]
        if n <= static_max:  # ansible's YAML inventory takes ~9 s at 2,000 hosts: skipped above --static-max
            static_src = same_data_static(listing, workdir / "same-data.yml")
            static, static_all, _out, _calls = runner.median(static_src, reps)
        hosts = len(json.loads(listing)["_meta"]["hostvars"])
        split = {label: phases(runner, src, reps) for label, src in
                 (("floor", floor_src), ("ours, warm", warm_src), ("ours lean, warm", lean_warm_src))}  # fmt: skip
        fetch_time = our_fetch(harness, reps)
        naive = run_naive(harness, state, cap)
    finally:
        harness.close()

    def row(label: str, median: float, runs: List[float], extra: str = "") -> None:
        print("  %-22s %6.2f s  (runs %s)%s" % (label, median, " ".join("%.2f" % t for t in runs), extra))

    print("N=%d instances (%d GPU hosts selected), latency %.0f ms, %d runs each" % (n, hosts, latency * 1000, reps))
    row("floor (1 static host)", floor, floor_all)
    if static_all:
        row("same data, static", static, static_all, "  = ansible-core's own cost for this inventory")
    row("ours, cold", cold, cold_all, "  calls %s" % fmt_calls(cold_calls))
    row("ours, warm cache", warm, warm_all, "  calls %d" % sum(warm_calls.values()))
    row("ours lean, cold", lean_cold, lean_cold_all, "  calls %d" % sum(lean_cold_calls.values()))
    row("ours lean, warm cache", lean_warm, lean_warm_all, "  calls %d" % sum(lean_warm_calls.values()))
    print("  CPU seconds by phase (median; parse = our plugin plus ansible-core's inventory calls, the rest is "
          "ansible-core's):")  # fmt: skip
    for label, spent in split.items():
        print("    %-16s %s" % (label, ", ".join("%s %.2f" % kv for kv in spent.items())))
    label = "EXTRAPOLATED from %d hosts" % naive["measured_hosts"] if naive["extrapolated"] else "measured"
    print("  API part alone, in this process: ours %.2f s; naive %.2f s [%s], calls %s"
          % (fetch_time, naive["time"], label, fmt_calls(naive["calls"])))  # fmt: skip
    print(
        "  ratios: cold/floor %.1fx, warm/floor %.1fx, warm/same-data-static %.2fx (nan: not run), "
        "naive/ours API time %.0fx, calls %.0fx"
        % (cold / floor, warm / floor, warm / static, naive["time"] / fetch_time,
           sum(naive["calls"].values()) / max(1, sum(cold_calls.values()))),
        flush=True,
    )  # fmt: skip
    print("  lean ratios: cold/floor %.1fx, warm/floor %.1fx" % (lean_cold / floor, lean_warm / floor), flush=True)
    return {
        "n": n, "cold": cold, "warm": warm, "floor": floor, "calls": sum(cold_calls.values()),
        "lean_cold": lean_cold, "lean_warm": lean_warm,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,2000,20000")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--naive-cap", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--static-max", type=int, default=2000, help="largest N for the same-data static baseline")
    args = parser.parse_args()
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-inventory-") as tmp:
            results.append(bench(n, args.latency, args.naive_cap, args.reps, args.static_max, Path(tmp)))
    print("Targets (issue 15):")
    for r in results:
        for variant, prefix in (("default", ""), ("lean", "lean_")):
            verdicts = ["calls %d" % r["calls"]] if not prefix else []
            cold, warm = r[prefix + "cold"], r[prefix + "warm"]
            if r["n"] == 2000:
                verdicts.append("cold %.2f s (< 2.0: %s)" % (cold, "PASS" if cold < 2.0 else "MISS"))
                gap = warm - r["floor"]
                verdicts.append("warm - floor %.2f s (< 0.5: %s)" % (gap, "PASS" if gap < 0.5 else "MISS"))
            if r["n"] == 20000:
                verdicts.append("cold %.2f s (< 5: %s)" % (cold, "PASS" if cold < 5.0 else "MISS"))
            if verdicts:
                print("  N=%d, %s: %s" % (r["n"], variant, ", ".join(verdicts)))
    flat = len({r["calls"] for r in results}) == 1
    print("  call count flat with N: %s" % ("yes" if flat else "no (%s)" % ", ".join(str(r["calls"]) for r in results)))


if __name__ == "__main__":
    main()
