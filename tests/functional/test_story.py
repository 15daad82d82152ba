"""The user's real path, end to end (`make story`): `ansible-playbook site.yml -l a10` from the repo root, hosts found
by the oci_gpu inventory plugin (real oci SDK, loopback OCI emulator), reached over real SSH as `ubuntu` with sudo,
on systemd hosts built like OCI's Ubuntu images (OCI's iptables rules loaded by netfilter-persistent, apt timers on).

Every role runs for real on each host: nvidia_driver (NVIDIA STAND-IN packages: no GPU here; containers cannot reboot,
so the reboot stays pending), container_toolkit (Docker from the Ubuntu archive, stand-in toolkit packages), vllm_server
with the REAL CPU vLLM image serving a tiny model, health gate. Then the seed's three calls from the control node at
each address the inventory gives, a re-run with changed=0, the firewall through `netfilter-persistent reload` and a
Docker restart, and `oci-vllm deploy/status/models/complete/chat`.

What stands in, and why: the stand-in apt repository (NVIDIA's is unreachable) served from the control node. The image
and the model come the way real hosts get them: the image pulled by digest from a real registry (Debian's
docker-registry, TLS from a test CA, htpasswd login; tests/functional/local_registry.py), the model downloaded with a
token from a Hugging Face hub endpoint that gates the repository (tests/functional/hf_hub_emulator.py, checked against
the real huggingface_hub client in test_hf_hub.py); it serves the tiny model under Mistral's id.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from host_sources import MODEL, REGISTRY_PORT, host_vars, serve_repo, standin_repo, start_hub
from local_registry import push_once, start_registry
from oci_emulator.fleet import add_compartment, add_instance, empty_state
from oci_emulator.harness import Harness
from oci_like_hosts import docker_bridge_gateway, remove_host, ssh_key, start_host, wait_for_ssh

from oci_vllm import api

pytestmark = [
    pytest.mark.story,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (Docker, /etc/hosts entries for the OCI emulator)"),
]

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("OCI_VLLM_CACHE", "/var/tmp/oci-vllm"))
VLLM_IMAGE = os.environ.get("VLLM_CPU_IMAGE", "oci-vllm-test/vllm-cpu:0.32.0")
DOMAIN, ADDRESS = "ocigpu-story.test", "127.0.0.74"
REGIONS = ("emu-east-1", "emu-west-1")
HOSTS = {"story-a10-jammy": "jammy", "story-a10-noble": "noble"}
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
# The story's own Hugging Face token (the hub emulator grants it the gated repository) and a wrong one.
HF_TOKEN = "hf_story%s" % os.urandom(12).hex()
WRONG_HF_TOKEN = "hf_wrong%s" % os.urandom(12).hex()
SEED = api.seed()  # the seed's requests, from the collection (roles/vllm_server/files/seed_requests.json)


def _run(argv, env, timeout=1500, cwd=ROOT):
    start = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    result.seconds = time.monotonic() - start  # type: ignore[attr-defined]
    return result


def _recap(stdout: str) -> dict[str, dict[str, int]]:
    return {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
            for m in RECAP.findall(stdout)}  # fmt: skip


def _tail(result, lines=60) -> str:
    return "\n".join((result.stdout + "\n" + result.stderr).splitlines()[-lines:])


def _tenancy(ips: dict[str, str]) -> dict:
    """Two VM.GPU.A10.1 in two compartments (and regions) carrying the test hosts' addresses, plus one VM.Standard."""
    state = empty_state(REGIONS)
    team_a, team_b = add_compartment(state, "team-a"), add_compartment(state, "team-b")
    tags = {"vllm": "true", "environment": "story"}
    placed = [
        add_instance(state, REGIONS[0], team_a, "story-a10-jammy", public=False, freeform=tags),
        add_instance(state, REGIONS[1], team_b, "story-a10-noble", public=False, freeform=tags),
        add_instance(state, REGIONS[0], team_a, "story-cpu", shape="VM.Standard.E4.Flex", gpus=0,
                     gpu_description=None, public=False, freeform=tags),
    ]  # fmt: skip
    for inst in placed[:2]:
        region = inst["region"]
        vnic_id = next(a["vnicId"] for a in state["vnicAttachments"][region] if a["instanceId"] == inst["id"])
        state["vnics"][region][vnic_id]["privateIp"] = ips[inst["displayName"]]
        next(p for p in state["privateIps"][region] if p["vnicId"] == vnic_id)["ipAddress"] = ips[inst["displayName"]]
    return state


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    work = tmp_path_factory.mktemp("story")
    key = ssh_key()
    hosts = {name: start_host(name, suite, key, docker_inside=True) for name, suite in HOSTS.items()}
    gateway = docker_bridge_gateway()
    repo_server = serve_repo(standin_repo(work), gateway)
    registry = start_registry(work / "registry", gateway, REGISTRY_PORT, VLLM_IMAGE)
    hub = start_hub(work, gateway, HF_TOKEN, registry)
    emulator = None
    try:
        (work / "emu").mkdir()
        emulator = Harness(work / "emu", _tenancy({n: h.ip for n, h in hosts.items()}), DOMAIN, ADDRESS)
        ssh_seconds = {name: wait_for_ssh(host) for name, host in hosts.items()}
        # The user's inventory: the shipped config, its group_vars, and this run's own cache directory.
        inventory = work / "inventory"
        inventory.mkdir()
        config = yaml.safe_load((ROOT / "inventory/oci/tenancy.oci_gpu.yml").read_text())
        config["cache_connection"] = str(work / "inventory-cache")
        (inventory / "tenancy.oci_gpu.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        (inventory / "group_vars").symlink_to(ROOT / "inventory/oci/group_vars")
        # What differs from a real OCI host, and only that: stand-in repositories, no reboot, the CPU image and model.
        # The allowlist admits the control node and the noble host only: noble may call jammy's endpoint, jammy may not
        # call noble's (a source outside the allowlist).
        noble_ip = hosts["story-a10-noble"].ip
        extra = dict(
            host_vars(gateway, registry, push_once(registry, VLLM_IMAGE, "0.32.0-cpu"), HF_TOKEN),
            vllm_server_allowed_cidrs=["%s/32" % gateway, "%s/32" % noble_ip],
        )
        extra_file = work / "story-vars.yml"
        extra_file.write_text(yaml.safe_dump(extra))
        home = work / "home"  # the control-node user's home: the generated API key is kept under it
        home.mkdir()
        env = dict(
            os.environ,
            **emulator.env,
            HOME=str(home),
            ANSIBLE_PRIVATE_KEY_FILE=str(key),
            ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="True",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
        )
        secrets = (HF_TOKEN, WRONG_HF_TOKEN, registry.password)
        yield {"hosts": hosts, "inventory": inventory, "extra": extra_file, "env": env, "home": home,
               "ssh_seconds": ssh_seconds, "timings": {}, "secrets": secrets}  # fmt: skip
    finally:
        if emulator is not None:
            emulator.close()
        repo_server.terminate()
        hub.terminate()
        registry.stop()
        if not os.environ.get("OCI_VLLM_STORY_KEEP"):  # keep the hosts to look at them after a failure
            for name in HOSTS:
                remove_host(name)


def _api_key(story) -> str:
    return (story["home"] / ".oci-vllm" / "vllm_server_api_key").read_text().strip()


def _ca(story) -> Path:
    """The CA the role keeps on the control node (vllm_server_tls_ca_dir's default, under the user's home)."""
    return story["home"] / ".oci-vllm" / "ca" / "ca.crt"


def _call(url: str, key: str | None, body: dict | None = None, timeout: float = 60, ca: Path | None = None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


SMOKE_CALLS = "Call /v1/models, /v1/completions and /v1/chat/completions"
PROFILE_LINE = re.compile(r"^(.+?) -+ (\d+\.\d+)s$", re.MULTILINE)


def _site(story, *args):
    """site.yml as users run it, with ansible.posix.profile_tasks timing each task (issue 15: what a re-run spends)."""
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "site.yml", "-l", "a10",
            "-i", str(story["inventory"]), "-e", "@%s" % story["extra"], *args]  # fmt: skip
    env = dict(
        story["env"], ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="15"
    )
    result = _run(argv, env)
    leaked = [i for i, secret in enumerate(story["secrets"]) if secret in result.stdout + result.stderr]
    assert not leaked, "secret(s) %s of (HF token, wrong HF token, registry password) in the output" % leaked
    return result


def _slowest(result) -> str:
    """profile_tasks' summary: the slowest tasks of the run, slowest first."""
    rows = PROFILE_LINE.findall(result.stdout.rsplit("PLAY RECAP", 1)[-1])
    return "\n".join("  %7s s  %s" % (seconds, name.strip()) for name, seconds in rows)


def test_site_converges_over_ssh_as_ubuntu(story):
    # Both hosts in one batch (the documented oci_vllm_serial knob): the rolling batches and their stop on a failed
    # host are tested in test_runner_site_gate.py; here they would only double the wall time.
    result = _site(story, "-e", "oci_vllm_serial=100%")
    story["timings"]["first converge"] = result.seconds
    print("site.yml first converge: %.0f s; SSH ready after %s" % (result.seconds, story["ssh_seconds"]))
    print("slowest tasks of the first converge:\n" + _slowest(result))
    assert result.returncode == 0, _tail(result)
    recap = _recap(result.stdout)
    # The inventory plugin found exactly the two A10 hosts, by the private IPs OCI gives them; the VM.Standard is out.
    assert set(recap) == {h.ip for h in story["hosts"].values()}, recap
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()), recap
    # Every task ran as `ubuntu` over SSH; root came from become, not from the connection.
    assert "ubuntu" in story["hosts"]["story-a10-jammy"].ssh("id -un").stdout
    assert "GPU roles (nvidia_driver, container_toolkit) run" in result.stdout
    assert SMOKE_CALLS in result.stdout  # the container was created: the seed's three calls ran
    for host in story["hosts"].values():
        # The image came from the registry by digest, the model from the hub into the host's cache, read offline.
        digests = host.ssh(
            "sudo docker image inspect -f '{{json .RepoDigests}}' %s" % shlex.quote(_extra(story)["vllm_server_image"])
        )
        assert _extra(story)["vllm_server_image"] in digests.stdout, digests.stdout
        snapshot = "/var/lib/oci-vllm/huggingface/hub/models--mistralai--Mistral-7B-Instruct-v0.2/snapshots"
        assert "model.safetensors" in host.ssh("sudo ls -R %s" % snapshot).stdout
        env = host.ssh("sudo docker inspect -f '{{json .Config.Env}}' vllm").stdout
        assert "HF_HUB_OFFLINE=1" in env and "HF_TOKEN=" not in env, env


def _extra(story) -> dict:
    return yaml.safe_load(story["extra"].read_text())


def test_seed_calls_from_the_control_node_at_each_inventory_address(story):
    key, ca = _api_key(story), _ca(story)
    for host in story["hosts"].values():
        base = "https://%s:8000" % host.ip
        status, models = _call(base + "/v1/models", key, ca=ca)
        assert status == 200 and [m["id"] for m in models["data"]] == [MODEL], (host.name, models)
        assert _call(base + "/v1/models", None, ca=ca)[0] == 401
        status, completion = _call(base + "/v1/completions", key, SEED.body("completions", MODEL, max_tokens=8), ca=ca)
        assert status == 200 and completion["choices"][0]["text"], completion
        status, chat = _call(base + "/v1/chat/completions", key, SEED.body("chat", MODEL, max_tokens=8), ca=ca)
        assert status == 200 and chat["choices"][0]["message"]["content"] is not None, chat


LISTED = {("/v1/models", "GET"), ("/v1/completions", "POST"), ("/v1/chat/completions", "POST")}
PUBLIC = {("/health", "GET")}  # vllm_server_front_health_public (default true)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# FastAPI's own pages, which vLLM serves but does not list in its OpenAPI paths.
FASTAPI_PAGES = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
# Valid for both generation routes (and for /invocations): if a route let it through, tokens would be processed.
PROBE_BODY = {"model": MODEL, "prompt": SEED.prompt, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def _backend(host, path: str) -> str:
    """vLLM itself, on the server host's loopback: the only place it listens."""
    code = "import urllib.request, sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:8001%s').read().decode())"
    return host.ssh("python3 -c %s" % shlex.quote(code % path)).stdout


def _tokens(host) -> float:
    """Prompt + generated tokens vLLM has processed so far (its own counters): any request that ran moves them."""
    lines = _backend(host, "/metrics").splitlines()
    names = ("vllm:prompt_tokens_total", "vllm:generation_tokens_total")
    return sum(float(line.split()[-1]) for line in lines if line.startswith(names))


def _probe(client, config: dict) -> list[dict]:
    """tests/functional/front_probe.py run on the client host, its configuration (with the key) on stdin."""
    source = (Path(__file__).with_name("front_probe.py")).read_text() + "\nmain(json.loads(%r))\n" % json.dumps(config)
    return json.loads(client.ssh("python3 -", stdin=source, timeout=600).stdout)


def test_front_denies_every_route_and_method_but_the_listed_ones_from_another_host(story):
    server, client = story["hosts"]["story-a10-jammy"], story["hosts"]["story-a10-noble"]
    key, ca_pem = _api_key(story), _ca(story).read_text()
    spec = json.loads(_backend(server, "/openapi.json"))  # the running server's own route list
    paths = sorted({re.sub(r"\{[^}]*\}", "x", path) for path in spec["paths"]} | set(FASTAPI_PAGES))
    assert len(paths) >= 20 and "/invocations" in paths and "/tokenize" in paths, paths
    denied = [[p, m, k] for k in (False, True) for p in paths for m in METHODS if not (k and (p, m) in LISTED)]
    base = "https://%s:8000" % server.ip
    before = _tokens(server)
    config = {"base": base, "ca_pem": ca_pem, "key": key, "calls": denied, "body": PROBE_BODY}
    config.update(plain="http://%s:8000/v1/completions" % server.ip, untrusted=base + "/health")
    results = _probe(client, config)
    assert _tokens(server) == before, "a request without the key, or to an unlisted route, reached vLLM's engine"
    wrong = []
    for r in results:
        kind, call = r.get("kind"), (r["path"], r["method"])
        if kind == "plain":  # plain HTTP on the TLS port: nginx's 400, nothing served
            ok = r.get("status") == 400 and "plain HTTP request was sent to HTTPS port" in r.get("body", "")
        elif kind == "untrusted":  # the system's CAs do not vouch for it: only the role's CA does
            ok = "CERTIFICATE_VERIFY_FAILED" in r.get("error", "")
        elif call in PUBLIC:
            ok = r.get("status") == 200
        elif r["key"]:  # the key opens the listed routes only: every other path 404, every other method 403
            ok = r.get("status") in (403, 404)
        else:
            ok = r.get("status") in (401, 403, 404)
        if not ok:
            wrong.append(r)
    assert not wrong, wrong
    assert len(results) == len(denied) + 2

    listed = _probe(client, {"base": base, "ca_pem": ca_pem, "key": key, "body": PROBE_BODY,
                             "calls": [[p, m, True] for p, m in sorted(LISTED)]})  # fmt: skip
    assert [r.get("status") for r in listed] == [200] * len(LISTED), listed
    assert _tokens(server) > before, "the listed generation routes did not reach vLLM"

    # A source outside the allowlist (jammy, calling noble) cannot even connect.
    outside = _probe(server, {"base": "https://%s:8000" % client.ip, "ca_pem": ca_pem, "key": "", "body": {},
                              "calls": [["/health", "GET", False]]})  # fmt: skip
    assert "error" in outside[0] and "CERTIFICATE" not in outside[0]["error"], outside


def test_second_run_changes_nothing(story):
    result = _site(story, "-e", "oci_vllm_serial=100%")
    story["timings"]["converged re-run"] = result.seconds
    first = story["timings"]["first converge"]
    print(
        "site.yml re-run: %.0f s (first converge %.0f s, ratio %.2f)" % (result.seconds, first, result.seconds / first)
    )
    print("slowest tasks of the converged re-run:\n" + _slowest(result))
    assert result.returncode == 0, _tail(result)
    recap = _recap(result.stdout)
    assert len(recap) == 2 and all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap
    # Nothing changed: the smoke calls are left to the health gate (which asks through the front every run).
    assert SMOKE_CALLS not in result.stdout and "Health gate - the model is listed and generating" in result.stdout


def test_wrong_hf_token_is_refused_before_any_change_and_the_endpoint_keeps_serving(story, tmp_path):
    wrong = tmp_path / "wrong-token.yml"  # a vars file: a token on the command line would sit in argv
    wrong.write_text(yaml.safe_dump({"vllm_server_hf_token": WRONG_HF_TOKEN}))
    result = _site(story, "-e", "oci_vllm_serial=100%", "-e", "@%s" % wrong)
    assert result.returncode != 0, _tail(result)
    assert "401" in result.stdout and "bad input, no host was changed" in result.stdout, _tail(result)
    recap = _recap(result.stdout)
    assert all(r["changed"] == 0 for r in recap.values()), recap
    key, ca = _api_key(story), _ca(story)
    for host in story["hosts"].values():
        assert _call("https://%s:8000/v1/models" % host.ip, key, ca=ca)[0] == 200, host.name
        # The stored token is still the one the hub grants (the wrong one was never written).
        assert host.ssh("sudo cat /etc/oci-vllm/hf_token").stdout.strip() == HF_TOKEN


def test_an_image_the_registry_lacks_fails_naming_image_and_registry_and_the_endpoint_keeps_serving(story, tmp_path):
    image = _extra(story)["vllm_server_image"].split("@")[0] + "@sha256:" + "0" * 64  # no such manifest
    bad = tmp_path / "bad-image.yml"
    bad.write_text(
        yaml.safe_dump({"vllm_server_image": image, "vllm_server_pull_retries": 2, "vllm_server_pull_delay": 1})
    )
    result = _site(story, "-e", "oci_vllm_serial=100%", "-e", "@%s" % bad)
    assert result.returncode != 0, _tail(result)
    registry = image.split("/")[0]
    assert "Could not pull vllm_server_image=%s from the registry %s (2 tries" % (image, registry) in result.stdout, (
        _tail(result)
    )
    key, ca = _api_key(story), _ca(story)
    for host in story["hosts"].values():
        assert _call("https://%s:8000/v1/models" % host.ip, key, ca=ca)[0] == 200, host.name


def _reachable(ip: str, key: str, timeout: float, ca: Path) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _call("https://%s:8000/v1/models" % ip, key, timeout=5, ca=ca)[0] == 200:
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


def test_firewall_rule_is_what_opens_the_endpoint_and_it_survives(story):
    host = story["hosts"]["story-a10-noble"]
    key, ca = _api_key(story), _ca(story)
    rules = host.ssh("sudo iptables -S INPUT").stdout
    ours = [line for line in rules.splitlines() if "oci_gpu.vllm vllm_server" in line]
    # One rule per allowed source (the control node and the noble host), for the front's port only (not vLLM's 8001).
    assert len(ours) == 2 and all("--dport 8000" in rule for rule in ours), rules
    assert rules.splitlines()[-1].startswith("-A INPUT -j REJECT"), rules  # OCI's REJECT is still the last word
    assert "oci_gpu.vllm vllm_server tcp/8000" in host.ssh("sudo cat /etc/iptables/rules.v4").stdout

    host.ssh("sudo netfilter-persistent reload")
    assert _reachable(host.ip, key, 10, ca), "endpoint closed after netfilter-persistent reload"
    host.ssh("sudo systemctl restart docker", timeout=300)
    assert _reachable(host.ip, key, 240, ca), "endpoint not back after a Docker restart"

    # The rules.v4 copy and the live rule are one and the same rule: a re-run after the reload finds it unchanged.
    reloaded = [line for line in host.ssh("sudo iptables -S INPUT").stdout.splitlines() if "oci_gpu.vllm" in line]
    assert reloaded == ours, (reloaded, ours)
    # Without the rule, OCI's REJECT closes the port: the endpoint is reachable only because the role opened it.
    for rule in ours:
        host.ssh("sudo iptables -D " + rule[len("-A ") :])  # the remote shell parses iptables' own quoting
    assert not _reachable(host.ip, key, 3, ca), "endpoint still reachable without the role's rule"
    host.ssh("sudo netfilter-persistent reload")  # the persisted rule comes back
    assert _reachable(host.ip, key, 10, ca)


def _cli(story, *args, timeout=1500):
    return _run([str(Path(sys.executable).with_name("oci-vllm")), *args], story["env"], timeout=timeout)


def test_oci_vllm_deploy_status_and_the_seed_calls(story):
    inventory = str(story["inventory"])
    deploy = _cli(
        story, "deploy", "-l", "a10", "-i", inventory, "-e", "@%s" % story["extra"], "-e", "oci_vllm_serial=100%", "-q"
    )
    story["timings"]["oci-vllm deploy"] = deploy.seconds
    assert deploy.returncode == 0, _tail(deploy)
    status = _cli(story, "status", "-i", inventory, "-l", "a10", "--json")
    assert status.returncode == 0, _tail(status)
    report = json.loads(status.stdout)
    assert sorted(r["host"] for r in report["hosts"]) == sorted(h.ip for h in story["hosts"].values()), report
    assert all(r["ready"] is True and r["container_state"] == "running" for r in report["hosts"]), report
    for host in story["hosts"].values():
        models = _cli(story, "models", "-i", inventory, "--host", host.ip, "--json")
        assert models.returncode == 0 and MODEL in models.stdout, _tail(models)
        complete = _cli(story, "complete", "-i", inventory, "--host", host.ip, "--max-tokens", "8")  # the seed's prompt
        assert complete.returncode == 0 and complete.stdout.strip(), _tail(complete)
        chat = _cli(story, "chat", "-i", inventory, "--host", host.ip, "--max-tokens", "8")
        assert chat.returncode == 0, _tail(chat)
    print("timings: %s" % {k: round(v) for k, v in story["timings"].items()})
