"""oci_gpu.vllm.gpu_instances, playbooks/provision.yml and `oci-vllm provision` through the real `oci` SDK against the
loopback OCI emulator (tests/functional/oci_emulator/; LaunchInstance/TerminateInstance in compute.py), signatures
verified. Each test uses a compartment of its own. Needs root (as the inventory tests): the emulator listens on
127.0.0.75:443 and /etc/hosts gets entries for its names.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oci_emulator.fleet import add_compartment, add_platform_images, empty_state, ensure_subnet
from oci_emulator.harness import Harness
from oci_emulator.inventory_run import ROOT, ensure_collection_loader, load_inventory, write_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for /etc/hosts entries and port 443")

DOMAIN = "ocigpu-prov.test"
ADDRESS = "127.0.0.75"
REGION = "emu-east-1"
ADS = ["Emu:EMU-EAST-1-AD-1", "Emu:EMU-EAST-1-AD-2", "Emu:EMU-EAST-1-AD-3"]
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOciGpuVllmProvisionTestKey test@ocigpu"
NEWEST_2204_FOR_GPU = "ocid1.image.oc1.emu-east-1.emucanonicalubuntu2204202610300"
CLOUD_INIT = ROOT / "playbooks" / "files" / "gpu-host-cloud-init.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
OCI_VLLM = Path(sys.executable).with_name("oci-vllm")


class SshBanner:
    """Answers like sshd (the banner only) on ADDRESS:port; counts connections. Stands in for the new hosts' sshd."""

    def __init__(self) -> None:
        self.sock = socket.create_server((ADDRESS, 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _peer = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.sendall(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n")
            conn.close()


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    state = empty_state((REGION,))
    add_platform_images(state, REGION)
    harness = Harness(tmp_path_factory.mktemp("oci-emu-prov"), state, DOMAIN, ADDRESS)
    harness.apply_env()
    harness.emulator.compute.provisioning_polls = 2
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def banner():
    server = SshBanner()
    yield server
    server.sock.close()


@pytest.fixture
def comp(emu, request):
    """A compartment and subnet of this test's own; injected failures cleared."""
    name = "prov" + hashlib.sha1(request.node.name.encode()).hexdigest()[:10]
    cid = add_compartment(emu.state, name)
    subnet = ensure_subnet(emu.state, REGION, cid)
    emu.emulator.compute.fail_capacity(REGION, [])
    emu.emulator.compute.fail_quota(None)
    emu.reset_calls()
    return {"id": cid, "subnet": subnet["id"]}


def inventory_config(tmp_path: Path, comp: dict, banner: SshBanner) -> Path:
    """The shipped tenancy config narrowed to the test compartment, cache ON, hosts reached at the SSH stand-in."""
    config = yaml.safe_load((ROOT / "inventory/oci/tenancy.oci_gpu.yml").read_text())
    config.pop("plugin")
    config.update(
        compartments=[comp["id"]],
        regions=[],
        cache_connection=str(tmp_path / "inventory-cache"),
        retry_base_delay=0.01,
        compose=dict(config["compose"], ansible_host="'%s'" % ADDRESS, ansible_port=str(banner.port)),
    )
    return write_config(tmp_path / "test.oci_gpu.yml", **config)


def provision(tmp_path: Path, comp: dict, banner: SshBanner, check: bool = False, **variables) -> tuple[int, dict]:
    """ansible-playbook playbooks/provision.yml; (rc, the play's `oci_vllm_provision` stats)."""
    extra = {
        "oci_vllm_provision_name": "seed",
        "oci_vllm_provision_compartment_id": comp["id"],
        "oci_vllm_provision_subnet_id": comp["subnet"],
        "oci_vllm_provision_ssh_public_key": SSH_KEY,
        "oci_vllm_provision_ssh_timeout": 20,
        **variables,
    }
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
        ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="True",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_SHOW_CUSTOM_STATS="True",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
    )
    argv = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory_config(tmp_path, comp, banner)), "-e", json.dumps(extra)]
    argv += ["--check"] if check else []
    done = subprocess.run(
        [*argv, str(ROOT / "playbooks/provision.yml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    try:
        stats = json.loads(done.stdout)["global_custom_stats"]["oci_vllm_provision"]
    except (ValueError, KeyError):
        pytest.fail(
            "no stats from provision.yml (rc %d):\n%s\n%s" % (done.returncode, done.stdout[-3000:], done.stderr)
        )
    return done.returncode, stats


def launched_in(emu, comp) -> list[dict]:
    return [i for i in emu.state["instances"][REGION] if i["compartmentId"] == comp["id"]]


def test_launch_fallback_rerun_and_inventory(emu, comp, banner, tmp_path):
    emu.emulator.compute.fail_capacity(REGION, [ADS[0]])
    before = banner.connections
    rc, stats = provision(tmp_path, comp, banner, oci_vllm_provision_count=2)
    assert rc == 0, stats
    assert [i["name"] for i in stats["instances"]] == ["seed-1", "seed-2"]
    for inst in stats["instances"]:
        assert (inst["availability_domain"], inst["availability_domains_full"]) == (ADS[1], [ADS[0]])
        assert inst["launched"] and inst["lifecycle_state"] == "RUNNING" and inst["public_ip"]
    assert stats["availability_domains_full"] == [ADS[0]] and stats["availability_domain_order"] == ADS
    calls = emu.calls()
    assert calls["LaunchInstance"] == 3  # AD-1 refused once, then skipped for seed-2
    assert emu.emulator.bad_signatures == 0
    body = emu.emulator.compute.launched[-1]
    assert body["sourceDetails"] == {"sourceType": "image", "imageId": NEWEST_2204_FOR_GPU, "bootVolumeSizeInGBs": 200}
    assert body["metadata"]["ssh_authorized_keys"] == SSH_KEY
    assert base64.b64decode(body["metadata"]["user_data"]).decode() == CLOUD_INIT.read_text()
    assert body["freeformTags"] == {"vllm": "true", "oci_gpu_vllm_group": "seed"}
    # the refreshed inventory (cache on) has both, in a10 and in the group's keyed group; SSH was waited for
    ids = {i["id"] for i in stats["instances"]}
    assert set(stats["inventory_hosts"]) == ids
    for groups in stats["inventory_groups"].values():
        assert {"a10", "vllm_group_seed"} <= set(groups), stats["inventory_groups"]
    assert stats["limit"] == "vllm_group_seed"
    assert banner.connections - before >= 2
    # the refresh rewrote the cache: a later run (oci-vllm deploy) reading it finds both
    cached = load_inventory(tmp_path / "test.oci_gpu.yml")
    assert {h.get_vars()["oci_id"] for h in cached.get_hosts("vllm_group_seed")} == ids
    # re-run: nothing launched, nothing changed
    emu.reset_calls()
    rc, stats = provision(tmp_path, comp, banner, oci_vllm_provision_count=2)
    assert rc == 0 and stats["changed"] is False
    assert "LaunchInstance" not in emu.calls() and emu.emulator.methods.get("POST", 0) == 0


def test_inventory_plugin_finds_launched_hosts_in_a10(emu, comp, banner, tmp_path):
    rc, stats = provision(tmp_path, comp, banner, oci_vllm_provision_count=1, oci_vllm_provision_name="inv")
    assert rc == 0, stats
    ensure_collection_loader()
    inventory = load_inventory(
        write_config(tmp_path / "plain.oci_gpu.yml", compartments=[comp["id"]], freeform_tags={"vllm": "true"})
    )
    found = {h.get_vars()["oci_id"] for h in inventory.get_hosts("a10")}
    assert found == {stats["instances"][0]["id"]}


def test_all_ads_full_fails_clearly_and_creates_nothing(emu, comp, banner, tmp_path):
    emu.emulator.compute.fail_capacity(REGION, ADS)
    rc, stats = provision(tmp_path, comp, banner, oci_vllm_provision_count=2)
    assert rc != 0 and stats["failed"] and stats["kind"] == "capacity"
    assert "no capacity for seed-1 (VM.GPU.A10.1) in any availability domain" in stats["msg"]
    assert all(ad in stats["msg"] for ad in ADS)
    assert stats["availability_domains_full"] == ADS and stats["instances"] == []
    assert launched_in(emu, comp) == []
    assert emu.calls()["LaunchInstance"] == 3


def test_quota_error_stops_with_the_service_message(emu, comp, banner, tmp_path):
    service = "The following service limits were exceeded: gpu-a10-count. Request a service limit increase."
    emu.emulator.compute.fail_quota("LimitExceeded", service)
    rc, stats = provision(tmp_path, comp, banner, oci_vllm_provision_count=2)
    assert rc != 0 and stats["kind"] == "quota"
    assert service in stats["msg"] and "HTTP 400 LimitExceeded" in stats["msg"]
    assert "room for 2 more VM.GPU.A10.1 instance(s)" in stats["msg"]
    assert emu.calls()["LaunchInstance"] == 1  # no other AD tried: a limit is not a capacity problem
    assert launched_in(emu, comp) == []


def test_terminate_and_check_mode(emu, comp, banner, tmp_path):
    rc, stats = provision(tmp_path, comp, banner, check=True, oci_vllm_provision_count=2)
    assert rc == 0 and stats["would_launch"] == ["seed-1", "seed-2"] and stats["check_mode"]
    assert emu.emulator.methods.get("POST", 0) == 0 and launched_in(emu, comp) == []
    rc, stats = provision(tmp_path, comp, banner, oci_vllm_provision_count=2)
    assert rc == 0
    ids = sorted(i["id"] for i in stats["instances"])
    emu.reset_calls()
    rc, stats = provision(tmp_path, comp, banner, check=True, oci_vllm_provision_state="absent")
    assert rc == 0 and sorted(t["id"] for t in stats["terminated"]) == ids
    assert emu.emulator.methods.get("DELETE", 0) == 0
    rc, stats = provision(tmp_path, comp, banner, oci_vllm_provision_state="absent")
    assert rc == 0 and stats["changed"] is True
    assert {i["lifecycleState"] for i in launched_in(emu, comp)} == {"TERMINATED"}
    assert [emu.emulator.compute.terminations[i] for i in ids] == [False, False]  # boot volumes not kept
    assert emu.calls()["TerminateInstance"] == 2
    rc, stats = provision(tmp_path, comp, banner, oci_vllm_provision_state="absent")
    assert rc == 0 and stats["changed"] is False and stats["terminated"] == []


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"oci_vllm_provision_shape": "VM.GPU.A99.1"}, "shape='VM.GPU.A99.1' is not a known OCI GPU shape: use one of"),
        ({"oci_vllm_provision_count": 0}, "count=0 is not allowed with state=present: give 1 or more"),
        ({"oci_vllm_provision_subnet_id": None}, "subnet_id is required with state=present"),
        ({"oci_vllm_provision_boot_volume_size_gb": 20}, "boot_volume_size_gb=20 is not allowed: give 50 to 32768"),
    ],
)
def test_bad_input_refused_before_any_call(emu, comp, banner, tmp_path, variables, message):
    if variables.get("oci_vllm_provision_subnet_id", "") is None:
        comp = dict(comp, subnet="")
        variables = {}
    rc, stats = provision(tmp_path, comp, banner, **variables)
    assert rc != 0 and stats["kind"] == "bad_input" and message in stats["msg"], stats["msg"]
    calls = emu.calls()
    assert not {"LaunchInstance", "ListImages", "ListAvailabilityDomains"} & set(calls), calls
    assert calls.get("ListInstances", 0) == 1  # the inventory's own listing at play start; the module made no call
    assert emu.emulator.methods.get("POST", 0) == emu.emulator.methods.get("DELETE", 0) == 0


def direct_params(comp: dict, **overrides) -> dict:
    params = {
        "name": "direct",
        "state": "present",
        "count": 2,
        "shape": "VM.GPU.A10.1",
        "compartment_id": comp["id"],
        "subnet_id": comp["subnet"],
        "boot_volume_size_gb": 200,
        "ssh_public_key": SSH_KEY,
        "user_data": "#cloud-config\n",
        "freeform_tags": None,
        "wait_timeout": 30,
    }
    return {**params, **overrides}


def test_throttling_is_waited_out_with_backoff(emu, comp):
    ensure_collection_loader()
    from ansible_collections.oci_gpu.vllm.plugins.module_utils._oci_provision import run
    from ansible_collections.oci_gpu.vllm.plugins.module_utils._oci_provision_sdk import OciApi

    emu.emulator.throttle("LaunchInstance", 2)
    emu.emulator.throttle("ListInstances", 1)
    slept: list[float] = []
    result = run(OciApi(config_file=emu.api_key["config"]), direct_params(comp), sleep=slept.append, poll_interval=0)
    assert result["changed"] and result["retries"] == 3 and len(slept) >= 3
    # ListInstances' first retry, LaunchInstance's first and second: base 1 s doubling, jitter [0.5, 1] x the step
    assert 0.5 <= slept[0] <= 1.0 and 0.5 <= slept[1] <= 1.0 and 1.0 <= slept[2] <= 2.0, slept
    assert emu.calls()["LaunchInstance"] == 4 and len(launched_in(emu, comp)) == 2  # a 429 creates nothing


def test_partial_failure_keeps_what_launched_and_a_rerun_completes(emu, comp):
    ensure_collection_loader()
    from ansible_collections.oci_gpu.vllm.plugins.module_utils._oci_provision import CapacityExhausted, run
    from ansible_collections.oci_gpu.vllm.plugins.module_utils._oci_provision_sdk import OciApi

    api = OciApi(config_file=emu.api_key["config"])
    compute = emu.emulator.compute
    original = compute.launch

    def fill_after_first(region, body):  # the region runs out of room after seed's first instance
        inst = original(region, body)
        compute.fail_capacity(REGION, ADS)
        return inst

    compute.launch = fill_after_first
    try:
        with pytest.raises(CapacityExhausted) as failure:
            run(api, direct_params(comp), poll_interval=0)
    finally:
        compute.launch = original
    assert [i["name"] for i in failure.value.result["instances"]] == ["direct-1"]
    assert failure.value.result["launched"] == ["direct-1"]
    compute.fail_capacity(REGION, [])
    emu.reset_calls()
    result = run(api, direct_params(comp), poll_interval=0)
    assert result["launched"] == ["direct-2"] and emu.calls()["LaunchInstance"] == 1


def test_tampered_body_is_refused_by_the_signature_check(emu, comp):
    import oci
    import requests

    config = oci.config.from_file(emu.api_key["config"])
    signer = oci.signer.Signer(config["tenancy"], config["user"], config["fingerprint"], config["key_file"])
    url = "https://iaas.%s.%s/20160918/instances" % (REGION, DOMAIN)
    signed = {"compartmentId": comp["id"], "shape": "VM.GPU.A10.1"}
    prepared = requests.Request("POST", url, json=signed, auth=signer).prepare()
    # same length, so the signed content-length still holds: only the body hash can tell
    prepared.body = json.dumps(dict(signed, shape="VM.GPU.A10.4")).encode()
    assert len(prepared.body) == int(prepared.headers["content-length"])
    answer = requests.Session().send(prepared, verify=emu.tls["bundle"], timeout=10)
    assert answer.status_code == 401 and answer.json()["code"] == "NotAuthenticated"
    assert "x-content-sha256" in answer.json()["message"]
    assert "LaunchInstance" not in emu.calls()


def oci_vllm(tmp_path: Path, comp: dict, banner: SshBanner, *args: str) -> subprocess.CompletedProcess:
    key = tmp_path / "id.pub"
    key.write_text(SSH_KEY + "\n")
    argv = [str(OCI_VLLM), "provision", "-q", "-i", str(inventory_config(tmp_path, comp, banner))]
    argv += ["--compartment", comp["id"], "--subnet", comp["subnet"], "--ssh-key", str(key), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, env=dict(os.environ), check=False)


def test_cli_provision_prints_where_and_next_command(emu, comp, banner, tmp_path):
    done = oci_vllm(tmp_path, comp, banner, "--shape", "VM.GPU.A10.1", "--name", "cli", "--model",
                    "mistralai/Mixtral-8x7B-Instruct-v0.1")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cli-1: launched in Emu:EMU-EAST-1-AD-1, RUNNING" in done.stdout
    assert "next: oci-vllm deploy -l vllm_group_cli" in done.stdout
    size = emu.emulator.compute.launched[-1]["sourceDetails"]["bootVolumeSizeInGBs"]
    assert 200 < size < 300, size  # Mixtral's ~87 GiB of weights above the seed's floor


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shape", "VM.GPU.A99.1"], "--shape 'VM.GPU.A99.1' is not a known OCI GPU shape"),
        (["--shape", "VM.GPU.A10.1", "--count", "0"], "--count 0 is not allowed: give 1 or more"),
        (["--shape", "VM.GPU.A10.1", "--subnet", ""], "--subnet is required"),
    ],
)
def test_cli_bad_input_exits_4_without_a_call(emu, comp, banner, tmp_path, args, message):
    done = oci_vllm(tmp_path, comp, banner, *args)
    assert done.returncode == 4 and message in done.stderr, done.stderr
    assert emu.calls() == {}


def test_cloud_init_holds_apt_on_first_boot_only_and_resumes_it(tmp_path):
    text = CLOUD_INIT.read_text()
    assert text.startswith("#cloud-config\n")  # cloud-init's marker for this format
    data = yaml.safe_load(text)
    assert data["package_update"] is False and data["package_upgrade"] is False  # cloud-init itself leaves apt alone
    hold = data["bootcmd"][0]
    assert hold[:3] == ["cloud-init-per", "instance", "oci-gpu-vllm-apt-hold"]
    assert "systemctl mask apt-daily.service apt-daily-upgrade.service" in hold[-1]
    files = {f["path"]: f["content"] for f in data["write_files"]}
    script = tmp_path / "resume"
    script.write_text(files["/usr/local/sbin/oci-gpu-vllm-apt-resume"])
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    assert subprocess.run(["sh", "-n", "-c", hold[-1]], check=False).returncode == 0  # syntax only, nothing runs
    assert (
        "systemctl unmask apt-daily.service apt-daily-upgrade.service"
        in files["/usr/local/sbin/oci-gpu-vllm-apt-resume"]
    )
    assert ["systemctl", "enable", "--now", "oci-gpu-vllm-apt-resume.timer"] in data["runcmd"]
