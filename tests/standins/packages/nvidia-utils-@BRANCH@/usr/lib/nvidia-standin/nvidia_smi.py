"""STAND-IN for NVIDIA's nvidia-smi (oci_gpu.vllm tests only): no GPU is queried.

Reads its "hardware" from test seams: /etc/nvidia-standin/gpus ("COUNT [NAME]") and
/etc/nvidia-standin/loaded-version (the version of the "loaded" kernel module; stands for /proc/driver/nvidia/version).
"""

import os
import sys
import time

LIBRARY_VERSION = "@VERSION@"
CUDA_VERSION = "@CUDA@"
SEAMS = "/etc/nvidia-standin"
MEMORY_MIB = {
    "A10": 23028,
    "A100-SXM4-40GB": 40960,
    "A100-SXM4-80GB": 81920,
    "H100 80GB HBM3": 81559,
    "H200": 143771,  # what the real H200 host reports (tests/golden/real-nvidia-h200-host.txt)
    "L40S": 46068,
}
FIELDS = {
    "index": lambda g: str(g["index"]),
    "name": lambda g: g["name"],
    "driver_version": lambda g: LIBRARY_VERSION,
    "uuid": lambda g: g["uuid"],
    "pci.bus_id": lambda g: g["bus"],
    "memory.total": lambda g: f"{g['memory']} MiB",
    "serial": lambda g: f"STANDIN{g['index']:06d}",
    "count": lambda g: str(g["count"]),
}


def read_seam(name: str) -> str:
    path = os.path.join(SEAMS, name)
    return open(path).read().strip() if os.path.exists(path) else ""


def gpus() -> list:
    words = (read_seam("gpus") or "1 NVIDIA A10").split(None, 1)
    count = int(words[0])
    model = words[1] if len(words) > 1 else "NVIDIA A10"
    memory = next((mib for key, mib in MEMORY_MIB.items() if key in model), 16384)
    return [
        {
            "index": i,
            "count": count,
            "name": f"{model} (STAND-IN)",
            "uuid": f"GPU-5a4d0000-0000-4000-8000-{i:012x}",
            "bus": f"00000000:{0x0F + 0x10 * i:02X}:00.0",
            "memory": memory,
        }
        for i in range(count)
    ]


def fail(code: int, message: str, stand_in_note: bool = True) -> None:
    """Exit like nvidia-smi (messages on stdout). Without the note the output is byte for byte the real one."""
    print(message + ("\n(STAND-IN nvidia-smi of the oci_gpu.vllm tests)" if stand_in_note else ""))
    sys.exit(code)


def query(args: list, devices: list) -> None:
    fields = next(a.split("=", 1)[1] for a in args if a.startswith("--query-gpu="))
    # The real one prints CSV with a header when --format is left out (`nvidia-smi --query-gpu=name`, golden file).
    fmt = next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), "csv")
    if not fmt.startswith("csv"):
        fail(2, f'"{fmt}" is not a valid format. Only csv is supported by this STAND-IN.')
    names = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = [n for n in names if n not in FIELDS]
    if unknown:
        fail(2, f'Field "{unknown[0]}" is not a valid field to query.\n', stand_in_note=False)
    if "noheader" not in fmt:
        print(", ".join(n + (" [MiB]" if n == "memory.total" and "nounits" not in fmt else "") for n in names))
    for gpu in devices:
        values = [FIELDS[n](gpu) for n in names]
        if "nounits" in fmt:
            values = [v.removesuffix(" MiB") for v in values]
        print(", ".join(values))


def table(devices: list) -> None:
    """The table in the layout of the real 580 driver (tests/golden/real-nvidia-h200-host.txt), marked STAND-IN."""
    print(time.strftime("%a %b %e %H:%M:%S %Y") + "       (STAND-IN nvidia-smi, no real GPU)")
    wide = "+" + "-" * 89 + "+"
    cells = "+" + "-" * 41 + "+" + "-" * 24 + "+" + "-" * 22 + "+"
    print(wide)
    head = f"NVIDIA-SMI {LIBRARY_VERSION:<23}Driver Version: {LIBRARY_VERSION:<15}CUDA Version: {CUDA_VERSION}"
    print(f"| {head:<87} |")
    print(cells)
    print("| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |")
    print("| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |")
    print("|                                         |                        |               MIG M. |")
    print("|" + "=" * 41 + "+" + "=" * 24 + "+" + "=" * 22 + "|")
    for g in devices:
        name = g["name"] if len(g["name"]) <= 29 else g["name"][:26] + "..."
        print(f"| {g['index']:>3}  {name:<29}  On  |   {g['bus']} Off | {'0':>20} |")
        power = "60W /  300W"
        memory = f"0MiB / {g['memory']}MiB"
        print(f"| N/A   31C    P0 {power:>23} | {memory:>22} | {'0%':>7}      Default |")
        print(f"| {'':<39} | {'':<22} | {'Disabled':>20} |")
        print(cells)
    print()
    print(wide)
    print(f"| {'Processes:':<87} |")
    print(f"| {' GPU   GI   CI              PID   Type   Process name                        GPU Memory':<87} |")
    print(f"| {'       ID   ID                                                               Usage':<87} |")
    print("|" + "=" * 89 + "|")
    print(f"| {' No running processes found (STAND-IN)':<87} |")
    print(wide)


def main(args: list) -> None:
    known = ("-L", "--list-gpus", "--query-gpu=", "--format=")
    if any(not a.startswith(known) for a in args):
        fail(2, "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.")
    loaded = read_seam("loaded-version")
    if not loaded:
        # What the REAL nvidia-smi (nvidia-utils-580-server) prints in a container with the packages installed and no
        # module loaded: measured 2026-12-02, ../shared/notes/environment.md. Same for the table, -L and --query-gpu.
        fail(255, "Failed to initialize NVML: Unknown Error", stand_in_note=False)
    if loaded != LIBRARY_VERSION:
        fail(18, f"Failed to initialize NVML: Driver/library version mismatch\nNVML library version: {LIBRARY_VERSION}")
    devices = gpus()
    if any(a.startswith("--query-gpu=") for a in args):
        query(args, devices)
    elif "-L" in args or "--list-gpus" in args:
        for g in devices:
            print(f"GPU {g['index']}: {g['name']} (UUID: {g['uuid']})")
    else:
        table(devices)


if __name__ == "__main__":
    main(sys.argv[1:])
