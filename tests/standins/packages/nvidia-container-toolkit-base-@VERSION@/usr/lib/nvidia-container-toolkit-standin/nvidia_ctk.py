"""STAND-IN nvidia-ctk (oci_gpu.vllm tests): `--version` and `runtime configure --runtime=docker` only."""

import argparse
import json
import os
import sys

PREFIX = "STAND-IN nvidia-ctk:"


def configure_docker(config: str, runtime_name: str, set_as_default: bool) -> None:
    settings = {}
    if os.path.exists(config) and os.path.getsize(config) > 0:
        with open(config, encoding="utf-8") as handle:
            settings = json.load(handle)
    entry = settings.setdefault("runtimes", {}).setdefault(runtime_name, {})
    entry["path"] = "nvidia-container-runtime"
    entry.setdefault("args", [])
    if set_as_default:
        settings["default-runtime"] = runtime_name
    os.makedirs(os.path.dirname(config) or ".", exist_ok=True)
    with open(config, "w", encoding="utf-8") as handle:
        json.dump(settings, handle, indent=4, sort_keys=True)
        handle.write("\n")
    print(f"{PREFIX} wrote updated config to {config}; restart the docker daemon to apply it")


def main() -> int:
    if sys.argv[1:] in (["--version"], ["-v"]):
        print("STAND-IN NVIDIA Container Toolkit CLI version @UPSTREAM@")
        return 0
    parser = argparse.ArgumentParser(prog="nvidia-ctk", description=f"{PREFIX} tests only")
    commands = parser.add_subparsers(dest="command", required=True)
    runtime = commands.add_parser("runtime").add_subparsers(dest="action", required=True)
    configure = runtime.add_parser("configure")
    configure.add_argument("--runtime", default="docker")
    configure.add_argument("--config", default="/etc/docker/daemon.json")
    configure.add_argument("--nvidia-runtime-name", default="nvidia")
    configure.add_argument("--set-as-default", action="store_true")
    args = parser.parse_args()
    if args.runtime != "docker":
        print(f"{PREFIX} only --runtime=docker is implemented, not {args.runtime!r}", file=sys.stderr)
        return 2
    try:
        configure_docker(args.config, args.nvidia_runtime_name, args.set_as_default)
    except (OSError, ValueError) as error:
        print(f"{PREFIX} cannot update {args.config}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
