#!/usr/bin/env bash
# Build the local Debian test base images used by molecule and the integration tier.
#
# Nothing can be pulled from a registry in the labs this collection is tested in, so each image
# is made from a debootstrap rootfs and `docker import`ed. An image is rebuilt only when it is
# missing or when this script changed (its sha256 is stored in the image label
# ailab.build-script-sha256).
#
# Usage: tests/images/build.sh [bookworm|trixie ...]   (default: both)
# Env:   AILAB_DEBIAN_MIRROR (default http://deb.debian.org/debian)
#        AILAB_IMAGE_REPO    (default ailab-test/debian)
set -euo pipefail

mirror=${AILAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
repo=${AILAB_IMAGE_REPO:-ailab-test/debian}
script_sha=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)

# Packages every node image has: systemd as PID 1, python3 for Ansible, and the tools the roles'
# preflight and service checks call. Kept here so that scenarios do not download them every run.
packages=(
  systemd systemd-sysv dbus python3 python3-apt sudo ca-certificates gnupg curl
  iproute2 procps kmod iptables apt-transport-https locales less
)

declare -A version_of=([bookworm]=12 [trixie]=13)

build_one() {
  local suite=$1 tag=$repo:${version_of[$1]}
  local current
  current=$(docker image inspect -f '{{ index .Config.Labels "ailab.build-script-sha256" }}' "$tag" 2>/dev/null || true)
  if [[ "$current" == "$script_sha" ]]; then
    echo "image $tag is up to date"
    return 0
  fi
  echo "building $tag from debootstrap $suite ($mirror)"
  local root
  root=$(mktemp -d "/var/tmp/ailab-rootfs-$suite.XXXXXX")
  trap 'rm -rf "$root"' RETURN
  local include
  include=$(IFS=,; echo "${packages[*]}")
  debootstrap --variant=minbase --include="$include" "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -n 30 "$root.log"; echo "debootstrap of $suite failed (log above)" >&2; return 1; }
  rm -f "$root.log"

  # Make the rootfs behave as a container node: no getty, no units that need real hardware.
  rm -f "$root"/etc/machine-id "$root"/var/lib/dbus/machine-id
  : >"$root/etc/machine-id"
  for unit in getty.target systemd-udevd.service systemd-udev-trigger.service \
              systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
              systemd-firstboot.service systemd-resolved.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
  echo "LANG=C.UTF-8" >"$root/etc/default/locale"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$root/etc/apt/apt.conf.d/90ailab-norecommends"
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
SOURCES
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin

  tar -C "$root" -c . | docker import \
    --change 'CMD ["/lib/systemd/systemd"]' \
    --change 'ENV container=docker' \
    --change "LABEL ailab.build-script-sha256=$script_sha" \
    --change "LABEL ailab.suite=$suite" \
    - "$tag" >/dev/null
  echo "built $tag"
}

suites=("$@")
[[ ${#suites[@]} -gt 0 ]] || suites=(bookworm trixie)
for s in "${suites[@]}"; do
  [[ -n "${version_of[$s]:-}" ]] || { echo "unknown suite '$s' (bookworm or trixie)" >&2; exit 2; }
  build_one "$s"
done
