#!/usr/bin/env bash
# Installs the system packages the tests use, when missing: openssl (the local cluster's PKI) and
# Debian's prometheus (a real Prometheus scrapes the operator in the metrics tests).
set -euo pipefail
missing=()
command -v openssl >/dev/null || missing+=(openssl)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing system packages: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
