"""`oci-vllm hosts` on the OCI inventory plugin: real `oci` SDK against the loopback OCI emulator of the inventory
tests (tests/functional/oci_emulator/), through ansible-runner's ansible-inventory. Needs root (as those tests)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oci_emulator.fleet import build_fleet
from oci_emulator.harness import Harness
from oci_emulator.inventory_run import write_config

from oci_vllm import cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for /etc/hosts entries and port 443")

# Own domain and address, so this emulator never collides with the inventory tests' (127.0.0.71) or benchmark's.
DOMAIN = "ocigpu-cli.test"
ADDRESS = "127.0.0.73"
# Shape -> (GPU family, GPU count), from OCI's shape documentation.
SHAPES = {
    "VM.GPU.A10.1": ("a10", 1),
    "VM.GPU.A10.2": ("a10", 2),
    "BM.GPU.A10.4": ("a10", 4),
    "BM.GPU4.8": ("a100", 8),
    "BM.GPU.A100-v2.8": ("a100", 8),
    "BM.GPU.H100.8": ("h100", 8),
    "BM.GPU.L40S.4": ("l40s", 4),
    "BM.GPU.MI300X.8": ("mi300x", 8),
}


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    harness = Harness(tmp_path_factory.mktemp("oci-emu-cli"), build_fleet(16, n_compartments=2), DOMAIN, ADDRESS)
    yield harness
    harness.close()


def _expected(state):
    """host (public IP, else private) -> shape, from the emulator state; RUNNING instances only."""
    vnics = {}
    for region, attachments in state["vnicAttachments"].items():
        for att in sorted(attachments, key=lambda a: a["timeCreated"]):
            vnics.setdefault(att["instanceId"], state["vnics"][region][att["vnicId"]])
    out = {}
    for instances in state["instances"].values():
        for inst in instances:
            if inst["lifecycleState"] == "RUNNING" and inst["shape"] in SHAPES:
                vnic = vnics[inst["id"]]
                out[vnic["publicIp"] or vnic["privateIp"]] = inst["shape"]
    return out


def test_hosts_table_from_the_oci_plugin(emu, tmp_path, monkeypatch, capsys):
    for key, value in emu.env.items():
        monkeypatch.setenv(key, value)
    config = write_config(tmp_path / "cli.oci_gpu.yml", regions=["all"], hostnames=["public_ip", "private_ip"])
    assert cli.main(["hosts", "-i", str(config), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["hosts"]
    expected = _expected(emu.state)
    assert len(rows) >= 8 and {r["host"] for r in rows} == set(expected)
    for row in rows:
        assert row["shape"] == expected[row["host"]] and row["ip"] == row["host"]
        assert (row["gpu_family"], row["gpu_count"]) == SHAPES[row["shape"]], row

    assert cli.main(["hosts", "-i", str(config)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["HOST", "SHAPE", "GPU", "GPUS", "IP"] and len(table) == len(rows) + 1


def test_plugin_failure_is_reported(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OCI_CONFIG_FILE", str(tmp_path / "missing-config"))
    config = write_config(tmp_path / "bad.oci_gpu.yml", regions=["all"], config_file=str(tmp_path / "missing-config"))
    assert cli.main(["hosts", "-i", str(config)]) == 1
    assert "missing-config" in capsys.readouterr().err
