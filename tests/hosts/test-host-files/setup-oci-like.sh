#!/usr/bin/env bash
# Runs INSIDE the build of a test-host image (a `docker build` RUN step of tests/hosts/test-host-images.sh, on a
# debootstrap rootfs): makes it look like OCI's Canonical Ubuntu platform image as far as a container can.
# What is like OCI and what is not: README.md next to this file.
#   OCI_VLLM_TEST_KERNEL=1|0   install the linux-oracle flavour's meta packages (default 1)
set -euo pipefail

files=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }

# iptables-persistent would otherwise save the build's own rules over OCI's.
debconf-set-selections <<'EOF'
iptables-persistent iptables-persistent/autosave_v4 boolean false
iptables-persistent iptables-persistent/autosave_v6 boolean false
EOF
apt-get update -qq
apt_install openssh-server iptables netfilter-persistent iptables-persistent unattended-upgrades

# OCI's kernel flavour. Nothing boots it here (a container runs the build machine's kernel); it gives the package
# graph, /lib/modules/<version>-oracle and the headers that flavour-specific packages look for.
if [ "${OCI_VLLM_TEST_KERNEL:-1}" = 1 ]; then
  apt_install linux-image-oracle linux-headers-oracle || {
    echo "setup-oci-like: installing linux-image-oracle linux-headers-oracle failed (see above);" \
      "OCI_VLLM_TEST_KERNEL=0 builds the image without them" >&2
    exit 1
  }
fi

# The login user as cloud-init creates it on OCI (its Ubuntu default_user, groups from cloud.cfg). No key is baked in:
# a test bind-mounts its public key onto /home/ubuntu/.ssh/authorized_keys.
getent group lxd >/dev/null || groupadd --system lxd
useradd --create-home --uid 1000 --user-group --shell /bin/bash --comment Ubuntu \
  --groups adm,cdrom,dip,lxd,sudo ubuntu
install -d -m 0700 -o ubuntu -g ubuntu /home/ubuntu/.ssh
cat >/etc/sudoers.d/90-cloud-init-users <<'EOF'
# Created by cloud-init on OCI; written here at image build by tests/hosts/test-host-files/setup-oci-like.sh

# User rules for ubuntu
ubuntu ALL=(ALL) NOPASSWD:ALL
EOF
chmod 0440 /etc/sudoers.d/90-cloud-init-users
visudo -cq

# sshd: key login only (Ubuntu cloud images' own file), root refused (cloud-init's disable_root on OCI).
echo 'PasswordAuthentication no' >/etc/ssh/sshd_config.d/60-cloudimg-settings.conf
cat >/etc/ssh/sshd_config.d/10-oci-vllm-no-root-login.conf <<'EOF'
# OCI refuses root logins (cloud-init disable_root); without cloud-init this refuses them in sshd itself.
PermitRootLogin no
EOF
# Host keys are made at first boot (cloud-init does it on OCI), never baked into the image.
rm -f /etc/ssh/ssh_host_*
cat >/etc/systemd/system/oci-vllm-ssh-host-keys.service <<'EOF'
[Unit]
Description=Generate SSH host keys at first boot (cloud-init's job on OCI)
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target ssh.service
EOF
systemctl enable oci-vllm-ssh-host-keys.service
# jammy starts ssh.service at boot; noble enables ssh.socket (socket activation) instead: keep each suite's own way.
if [ -e /lib/systemd/system/ssh.socket ] && systemctl is-enabled --quiet ssh.socket 2>/dev/null; then
  systemctl enable ssh.socket
else
  systemctl enable ssh.service
fi

# OCI's host firewall, loaded at boot by netfilter-persistent (needs NET_ADMIN in the container).
install -m 0640 "$files/oci-rules.v4" /etc/iptables/rules.v4
install -m 0640 "$files/oci-rules.v6" /etc/iptables/rules.v6
systemctl enable netfilter-persistent.service

# apt-daily and unattended-upgrades run after boot and hold the apt/dpkg locks, as on OCI.
cat >/etc/apt/apt.conf.d/20auto-upgrades <<'EOF'
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
EOF
# TEST ACCELERATION (not like OCI): there the timers fire within 12 h (apt-daily) and 1 h (apt-daily-upgrade) of their
# calendar times, or soon after boot when missed; here they fire 5 s and 10 s after boot so a test meets the locks.
for timer in apt-daily:5s apt-daily-upgrade:10s; do
  mkdir -p "/etc/systemd/system/${timer%%:*}.timer.d"
  printf '%s\n' '# Test acceleration (tests/hosts/test-host-files/README.md): fire soon after boot.' '[Timer]' \
    "OnBootSec=${timer#*:}" 'RandomizedDelaySec=0' 'AccuracySec=1s' \
    >"/etc/systemd/system/${timer%%:*}.timer.d/oci-vllm-test-acceleration.conf"
  systemctl enable "${timer%%:*}.timer"
done

apt-get clean
rm -rf /var/lib/apt/lists/*
# An emptied list dir must not look freshly updated, or apt cache_valid_time would skip the update.
touch -d '2000-01-01' /var/lib/apt/lists
: >/etc/machine-id
