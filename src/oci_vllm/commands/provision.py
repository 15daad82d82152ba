"""`oci-vllm provision`: make (or remove) the OCI GPU hosts the seed starts from, through playbooks/provision.yml
(module oci_gpu.vllm.gpu_instances), and say where each landed and what to run next.

The play's result comes through its custom stats `oci_vllm_provision` (the stable contract), never task names.
`--model` sizes the boot volume from the sizing planner's weight size (the seed's 200 GB is the floor).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import BadInput, ExitCode, OciVllmError
from ..output import emit, progress
from ..plan import load_collection_module, load_planner
from ..project import Project
from ..validation import validate_inventory, validate_shape
from . import Context

PROVISION_STATS = "oci_vllm_provision"
SYSTEM_GB = 100  # OS, NVIDIA driver and CUDA libraries, Docker, the vLLM image unpacked and its layers while pulling
WEIGHTS_HEADROOM = 1.5  # the Hugging Face cache holds the checkpoint; room for one more revision's changed files
# The module's parameter names as the CLI spells them, for the module's own validation messages.
_OPTIONS = {
    "name": "--name", "compartment_id": "--compartment", "count": "--count", "shape": "--shape",
    "subnet_id": "--subnet", "image_id": "--image-id", "boot_volume_size_gb": "--boot-volume-gb",
    "ssh_public_key": "--ssh-key",
}  # fmt: skip

EPILOG = """exit codes for provision: 0 done; 4 bad input (nothing was created); 1 OCI refused or failed (out of host
capacity in every availability domain, a limit or quota, a timeout): the message says what to ask for.
Environment: OCI_VLLM_COMPARTMENT, OCI_VLLM_SUBNET, OCI_VLLM_SSH_PUBLIC_KEY_FILE stand in for the options;
OCI credentials as for the inventory (OCI_CONFIG_FILE, OCI_CONFIG_PROFILE, OCI_AUTH_TYPE, OCI_REGION)."""


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register `provision` on the CLI's subparsers."""
    p = sub.add_parser(
        "provision",
        parents=parents,
        help="launch the GPU instances (capacity fallback over availability domains), or remove them",
        epilog=EPILOG,
    )
    p.add_argument("--shape", required=True, help="OCI GPU shape, e.g. VM.GPU.A10.1, BM.GPU.A10.4")
    p.add_argument("--count", type=int, default=1, help="how many instances (default 1)")
    p.add_argument("--name", default="vllm", help="group name: instances <name>-1..N (default vllm)")
    p.add_argument("--model", help="size the boot volume for this model (sizing planner; at least 200 GB)")
    p.add_argument("--boot-volume-gb", type=int, help="boot volume size in GB (default 200, or from --model)")
    p.add_argument("--compartment", default=os.environ.get("OCI_VLLM_COMPARTMENT"), help="compartment OCID")
    p.add_argument("--subnet", default=os.environ.get("OCI_VLLM_SUBNET"), help="subnet OCID")
    p.add_argument(
        "--ssh-key",
        default=os.environ.get("OCI_VLLM_SSH_PUBLIC_KEY_FILE"),
        metavar="FILE",
        help="SSH public key file for the ubuntu user",
    )
    p.add_argument(
        "--availability-domain", action="append", default=[], help="AD to try, in order (repeatable; default all)"
    )
    p.add_argument("--image-id", help="image OCID (default: newest Canonical Ubuntu platform image for the shape)")
    p.add_argument("--ubuntu", default="22.04", choices=["22.04", "24.04"], help="Ubuntu version (default 22.04)")
    p.add_argument("--terminate", action="store_true", help="terminate the group's instances instead")
    p.add_argument("--check", action="store_true", help="report what would be launched or terminated, do nothing")
    p.add_argument("--no-wait-ssh", action="store_true", help="do not wait until SSH answers on the new hosts")


def provision_logic(project: Project) -> ModuleType:
    """The gpu_instances module's logic (plugins/module_utils/_oci_provision.py, stdlib only) of `project`'s
    checkout: its limits and validation are the CLI's, so each rule lives once."""
    return load_collection_module(project, "module_utils", "_oci_provision")


def boot_volume_gb(project: Project, model: str) -> tuple[int, str]:
    """(size, why) from the planner's weight size for MODEL, with the seed's 200 GB as floor."""
    planner, _shapes = load_planner(project)
    result = planner.plan(model)
    weights = result.get("weights_gib_total")
    if weights is None:
        raise BadInput(f"--model {model!r}: the sizing planner does not know its size; give --boot-volume-gb instead")
    need = math.ceil(weights * 1.073741824 * WEIGHTS_HEADROOM + SYSTEM_GB)
    size = max(provision_logic(project).DEFAULT_BOOT_VOLUME_GB, need)
    return size, f"{model}: {weights} GiB of weights x {WEIGHTS_HEADROOM} + {SYSTEM_GB} GB for the system = {need} GB"


def _read_public_key(path: str | None) -> str:
    if not path:
        raise BadInput(
            "--ssh-key FILE is required: the public key the ubuntu user accepts (or OCI_VLLM_SSH_PUBLIC_KEY_FILE)"
        )
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BadInput(f"--ssh-key {path!r}: cannot read it ({exc.strerror})") from None
    if "PRIVATE KEY" in text:
        raise BadInput(f"--ssh-key {path!r} is a PRIVATE key: give the .pub file")
    if not text.startswith(("ssh-", "ecdsa-", "sk-")):
        raise BadInput(f"--ssh-key {path!r} is not an OpenSSH public key (ssh-ed25519 AAAA..., ssh-rsa AAAA...)")
    return text


def extra_vars(args: argparse.Namespace, project: Project) -> tuple[dict[str, Any], str]:
    """The play's variables from the arguments, every value checked first (BadInput names the offending one)."""
    _planner, shapes = load_planner(project)
    validate_shape(args.shape, shapes.GPU_SHAPES)
    for option, value, required in (
        ("--compartment", args.compartment, True),
        ("--subnet", args.subnet, not args.terminate),
    ):
        if required and not value:
            env = {"--compartment": "OCI_VLLM_COMPARTMENT", "--subnet": "OCI_VLLM_SUBNET"}[option]
            raise BadInput(f"{option} is required: the OCID (or set {env})")
    logic = provision_logic(project)
    why = ""
    size = args.boot_volume_gb
    if not args.terminate and args.model and size is None:
        size, why = boot_volume_gb(project, args.model)
    size = logic.DEFAULT_BOOT_VOLUME_GB if size is None else size
    public_key = _read_public_key(args.ssh_key) if args.ssh_key and not args.terminate else ""
    params = {
        "name": args.name, "state": "absent" if args.terminate else "present", "compartment_id": args.compartment,
        "count": args.count, "shape": args.shape, "subnet_id": args.subnet, "image_id": args.image_id,
        "boot_volume_size_gb": size, "ssh_public_key": public_key,
    }  # fmt: skip
    try:
        logic.validate(params)
    except logic.InvalidRequest as exc:
        message = str(exc)
        if message.startswith("ssh_public_key is required"):
            _read_public_key(None)  # the CLI's own message, with its environment variable
        for param, option in _OPTIONS.items():
            if message.startswith(param):
                rest = message[len(param) :]
                rest = " " + rest[1:] if rest.startswith("=") else rest
                message = option + rest.replace(" with state=present", "").replace("state=absent", "--terminate")
                break
        raise BadInput(message) from None
    variables: dict[str, Any] = {
        "oci_vllm_provision_name": args.name,
        "oci_vllm_provision_state": "absent" if args.terminate else "present",
        "oci_vllm_provision_compartment_id": args.compartment,
        "oci_vllm_provision_wait_ssh": not args.no_wait_ssh,
    }
    if not args.terminate:
        variables.update(
            oci_vllm_provision_count=args.count,
            oci_vllm_provision_shape=args.shape,
            oci_vllm_provision_subnet_id=args.subnet,
            oci_vllm_provision_ssh_public_key=public_key,
            oci_vllm_provision_boot_volume_size_gb=size,
            oci_vllm_provision_availability_domains=list(args.availability_domain),
            oci_vllm_provision_image_os_version=args.ubuntu,
        )
        if args.image_id:
            variables["oci_vllm_provision_image_id"] = args.image_id
    return variables, why


def cmd_provision(args: argparse.Namespace, ctx: Context) -> int:
    inventory = validate_inventory(args.inventory)
    variables, why = extra_vars(args, ctx.project)
    result = ctx.run_playbook(
        ctx.project,
        ctx.project.root / "playbooks" / "provision.yml",
        inventory=inventory,
        extra_vars=[json.dumps(variables)],
        check=args.check,
        verbosity=args.verbose,
        event_handler=progress(args),
        keep_artifacts=args.keep_artifacts,
    )
    report = result.custom_stats.get(PROVISION_STATS)
    if not isinstance(report, dict):
        detail = "; ".join(f["msg"] for f in result.failures if f.get("msg")) or result.status
        raise OciVllmError(f"provision.yml did not report (runner status {result.status}): {detail}")
    summary = {"command": "provision", "boot_volume_gb": variables.get("oci_vllm_provision_boot_volume_size_gb")}
    summary.update(report)
    if report.get("failed"):
        code = ExitCode.BAD_INPUT if report.get("kind") == "bad_input" else ExitCode.ERROR
        summary["exit_code"] = int(code)
        lines = [f"provision FAILED ({report.get('kind')}): {report.get('msg')}"]
        lines += _instance_lines(report)
        emit(summary, args.json, "\n".join(lines))
        return int(code)
    summary["exit_code"] = int(ExitCode.OK)
    next_command = f"oci-vllm deploy -l {report['limit']}" if report.get("limit") else ""
    summary["next"] = next_command
    emit(summary, args.json, "\n".join(_human(args, report, why, next_command)))
    return int(ExitCode.OK)


def _instance_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    hosts = report.get("inventory_hosts") or {}
    for inst in report.get("instances") or []:
        full = inst.get("availability_domains_full") or []
        tried = f" (full: {', '.join(full)})" if full else ""
        verb = "launched in" if inst.get("launched") else "already in"
        address = inst.get("public_ip") or inst.get("private_ip") or "-"
        host = hosts.get(inst.get("id")) or "not in the inventory"
        lines.append(
            f"  {inst.get('name')}: {verb} {inst.get('availability_domain')}{tried}, {inst.get('lifecycle_state')}, "
            f"{address}, inventory host {host}"
        )
    return lines


def _human(args: argparse.Namespace, report: dict[str, Any], why: str, next_command: str) -> list[str]:
    mode = " (check mode)" if report.get("check_mode") else ""
    if report.get("state") == "absent":
        gone = [t.get("name") for t in report.get("terminated") or []]
        verb = "would terminate" if report.get("check_mode") else "terminated"
        return [f"provision --terminate{mode}: {verb} {', '.join(gone) or 'nothing (no instance of the group)'}"]
    lines = [f"provision{mode}: group {args.name}, {args.count} x {args.shape}, changed={report.get('changed')}"]
    if why:
        lines.append(f"  boot volume: {why}")
    if report.get("would_launch"):
        lines.append(f"  would launch: {', '.join(report['would_launch'])}")
    if report.get("availability_domains_full"):
        lines.append(f"  out of host capacity: {', '.join(report['availability_domains_full'])}")
    lines += _instance_lines(report)
    if report.get("not_managed"):
        lines.append(f"  left alone (outside {args.name}-1..{args.count}): {', '.join(report['not_managed'])}")
    if next_command and not report.get("check_mode"):
        lines.append(f"next: {next_command}")
    elif not report.get("check_mode") and report.get("instances"):
        lines.append(
            "next: the inventory does not select these hosts (tags or compartments of its config): "
            "see docs/provision.md"
        )
    return lines
