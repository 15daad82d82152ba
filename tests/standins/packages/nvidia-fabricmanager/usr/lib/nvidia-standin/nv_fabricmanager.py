"""STAND-IN for NVIDIA's nv-fabricmanager (tests only): refuses to run unless the "loaded" driver matches."""

import sys
import time
from pathlib import Path

VERSION = "@VERSION@"
SEAM = Path("/etc/nvidia-standin/loaded-version")  # stands for /proc/driver/nvidia/version

print(f"STAND-IN nv-fabricmanager {VERSION}: starting (no NVSwitch is managed)", flush=True)
loaded = SEAM.read_text().strip() if SEAM.exists() else ""
if not loaded:
    print("STAND-IN nv-fabricmanager: request to query NVIDIA driver information failed", flush=True)
    sys.exit(1)
if loaded != VERSION:
    print(f"STAND-IN nv-fabricmanager: version {VERSION} does not match driver version {loaded}", flush=True)
    sys.exit(1)
print("STAND-IN nv-fabricmanager: successfully configured all the available NVSwitches (none)", flush=True)
while True:
    time.sleep(3600)
