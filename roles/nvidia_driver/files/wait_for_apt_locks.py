"""Wait until no process holds the apt/dpkg locks (cloud images run unattended-upgrades at first boot).

Reads /proc/locks instead of taking the locks, so a waiting role never races the holder.
Usage: wait_for_apt_locks.py TIMEOUT_SECONDS. Exit 0 when free (prints how long it waited), 1 on timeout.
"""

import os
import sys
import time

LOCKS = (
    "/var/lib/dpkg/lock-frontend",
    "/var/lib/dpkg/lock",
    "/var/lib/apt/lists/lock",
    "/var/cache/apt/archives/lock",
)


def holders():
    """Return (lock path, pid, command) for every lock file some process holds."""
    inodes = {}
    for path in LOCKS:
        try:
            inodes[os.stat(path).st_ino] = path
        except OSError:
            continue
    found = []
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()
            if "->" in fields:  # a process blocked waiting for a lock, not holding it
                continue
            try:
                pid, device_inode = fields[4], fields[5]
                inode = int(device_inode.rsplit(":", 1)[1])
            except (IndexError, ValueError):
                continue
            if inode in inodes:
                try:
                    with open("/proc/%s/comm" % pid) as comm:
                        command = comm.read().strip()
                except OSError:
                    command = "?"
                found.append((inodes[inode], pid, command))
    return found


def main():
    timeout = float(sys.argv[1])
    start = time.monotonic()
    while True:
        busy = holders()
        waited = time.monotonic() - start
        if not busy:
            print("apt/dpkg locks free after waiting %.0f s" % waited)
            return 0
        if waited >= timeout:
            detail = ", ".join("%s held by pid %s (%s)" % entry for entry in busy)
            print("apt/dpkg locks still held after %.0f s (nvidia_driver_apt_lock_timeout): %s" % (waited, detail))
            return 1
        time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
