# Copyright: contributors to the oci_gpu.vllm collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Inventory speed: oci_gpu.vllm.oci_gpu vs the naive per-host OCI call pattern, against the loopback OCI emulator.

For N instances over 5 compartments and 2 regions, with emulated latency per request (default 50 ms), the emulator in
its own process and the real `oci` SDK:
- ours, cold: the plugin through Ansible's InventoryManager (config parsing, fetch, populate 2 groups per host...).
- ours, warm cache: the same with `cache: true` (jsonfile) after one run filled the cache.
- naive: what the usual OCI inventory plugin does: list instances per compartment, then per instance, serially,
  ListVnicAttachments(instance_id) and GetVnic per attachment. At 50 ms per call that takes minutes for N=2000, so by
  default it runs for the first --naive-cap selected instances only and the rest is EXTRAPOLATED linearly (labelled);
  its call count is exact (counted from the emulated fleet).
Prints wall times, API calls by operation and ratios naive/ours; asserts nothing about wall time (DEVELOPERS.md).
Needs root (adds /etc/hosts entries for the emulated endpoints, listens on 127.0.0.72:443).
Usage: .venv/bin/python benchmarks/bench_inventory.py [--sizes 100,500,2000] [--latency 0.05] [--naive-cap 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "functional"))

from oci_emulator.inventory_run import ensure_collection_loader, load_inventory, write_config  # noqa: E402

ensure_collection_loader()

from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_fetch import SdkClients  # noqa: E402
from ansible_collections.oci_gpu.vllm.plugins.plugin_utils._oci_gpu_hosts import (  # noqa: E402
    Filters,
    instance_selected,
)
from oci_emulator.fleet import build_fleet  # noqa: E402
from oci_emulator.harness import Harness  # noqa: E402

DOMAIN = "ocigpu-bench.test"
ADDRESS = "127.0.0.72"


def fmt_calls(calls: Dict[str, int]) -> str:
    return "%d (%s)" % (sum(calls.values()), ", ".join("%s %d" % kv for kv in sorted(calls.items())))


def run_plugin(harness: Harness, config: Path) -> Tuple[float, Dict[str, int], int]:
    harness.reset_calls()
    start = time.perf_counter()
    inventory = load_inventory(config)
    elapsed = time.perf_counter() - start
    hosts = len(inventory.get_hosts())
    return elapsed, harness.calls(), hosts


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
                for inst in response.data:
                    cfg = inst.shape_config
                    if instance_selected(inst.shape, inst.lifecycle_state, cfg.gpus, cfg.gpu_description,
                                         inst.freeform_tags, inst.defined_tags, Filters()):  # fmt: skip
                        selected.append((region, inst))
                page = response.next_page
                if not page:
                    break
    listing_time = time.perf_counter() - start
    listing_calls = sum(harness.calls().values())
    per_host_start = time.perf_counter()
    done = 0
    for region, inst in selected[:cap]:
        compute, network = clients.compute(region), clients.network(region)
        attachments = compute.list_vnic_attachments(
            compartment_id=inst.compartment_id, instance_id=inst.id, **kwargs
        ).data
        for att in attachments:
            network.get_vnic(vnic_id=att.vnic_id, **kwargs)
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
        "GetVnic": sum(attachments_per_instance.get(inst.id, 0) for _region, inst in selected),
    }
    per_host = per_host_time / max(done, 1)
    return {
        "hosts": len(selected),
        "measured_hosts": done,
        "measured_time": listing_time + per_host_time,
        "time": listing_time + per_host * len(selected),
        "extrapolated": done < len(selected),
        "calls": exact_calls,
        "listing_calls": listing_calls,
    }


def bench(n: int, latency: float, cap: int, workdir: Path) -> None:
    state = build_fleet(n, n_compartments=5)
    harness = Harness(workdir, state, DOMAIN, ADDRESS, latency=latency, subprocess_mode=True)
    try:
        harness.apply_env()
        cold_cfg = write_config(workdir / "cold.oci_gpu.yml", regions=["all"], cache=False)
        warm_cfg = write_config(
            workdir / "warm.oci_gpu.yml",
            regions=["all"],
            cache=True,
            cache_plugin="ansible.builtin.jsonfile",
            cache_connection=str(workdir / "cache"),
            cache_timeout=3600,
        )
        cold_time, cold_calls, hosts = run_plugin(harness, cold_cfg)
        run_plugin(harness, warm_cfg)  # fills the cache
        warm_time, warm_calls, warm_hosts = run_plugin(harness, warm_cfg)
        naive = run_naive(harness, state, cap)
    finally:
        harness.close()
    label = "EXTRAPOLATED from %d measured hosts" % naive["measured_hosts"] if naive["extrapolated"] else "measured"
    print("N=%d instances (%d GPU hosts selected), latency %.0f ms" % (n, hosts, latency * 1000))
    print("  ours cold : %7.2f s  calls %s" % (cold_time, fmt_calls(cold_calls)))
    print("  ours warm : %7.2f s  calls %s  hosts %d" % (warm_time, fmt_calls(warm_calls), warm_hosts))
    print("  naive     : %7.2f s  calls %s  [time %s; calls exact]" % (naive["time"], fmt_calls(naive["calls"]), label))
    print(
        "  ratio naive/ours: time %.0fx, calls %.0fx"
        % (naive["time"] / cold_time, sum(naive["calls"].values()) / max(1, sum(cold_calls.values())))
    )
    print(
        "  targets: 2000 hosts < 2 s: %s; < 150 calls: %s; warm < 0.5 s: %s"
        % (
            "%.2f s" % cold_time if n >= 2000 else "n/a",
            sum(cold_calls.values()),
            "%.2f s" % warm_time,
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,500,2000")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--naive-cap", type=int, default=100)
    args = parser.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-inventory-") as tmp:
            bench(n, args.latency, args.naive_cap, Path(tmp))


if __name__ == "__main__":
    main()
