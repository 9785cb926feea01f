#!/usr/bin/env bash
# Installs the system packages the tests use, when missing: openssl (the local cluster's PKI),
# Debian's prometheus (a real Prometheus scrapes the operator in the metrics tests), and what the
# real nodes and their images need: containerd, runc and the CNI plugins, busybox-static, gcc and
# libc6-dev (the pause binary), iptables, debootstrap (the operator image's Debian base).
set -euo pipefail
missing=()
command -v openssl >/dev/null || missing+=(openssl)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)
# Packages by name: some have no command on a non-root PATH (/usr/sbin) or none at all.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
for pkg in debootstrap containerd runc containernetworking-plugins busybox-static gcc libc6-dev iptables; do
  installed "$pkg" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing system packages: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
