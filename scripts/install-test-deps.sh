#!/usr/bin/env bash
# Installs what the tests that drive real S3 clients need, and what the benchmarks use:
#   Debian: rclone, s3cmd, nginx, squid, curl, haproxy (rolling-restart test), systemd
#     (systemd-analyze checks deploy/systemd), bind9-dnsutils (dig) and dnsmasq-base (the
#     transparent-mode DNS tests), util-linux and mount (unshare and the bind mount that gives
#     rclone s3gate as its resolver in the transparent-mode rclone tests)
#   PyPI, in a venv at .venv: the newest awscli (v1), boto3, requests, dnspython (resolution
#   through s3gate's DNS responder in the transparent-mode client tests), moto (the upstream STS
#   of the per-client upstream role test), and the validators of
#   deploy/: cfn-lint (CloudFormation) and kubernetes-validate (Kubernetes schemas, offline)
# Idempotent: apt-get runs only when a package is missing, pip only when the venv is new, a
# package is missing, or the last upgrade is older than a day (S3GATE_DEPS_UPGRADE=1 forces it).
#
#   scripts/install-test-deps.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
apt_packages=(rclone s3cmd nginx squid curl haproxy systemd bind9-dnsutils dnsmasq-base util-linux mount)
py_packages=(awscli boto3 requests dnspython cfn-lint kubernetes-validate "moto[server]")

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${apt_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-test-deps: installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    # Installing nginx/squid/haproxy must not start their services: tests start their own instances.
    as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    echo "install-test-deps: creating $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    rm -f "$venv/.s3gate-deps-stamp"
fi

stamp="$venv/.s3gate-deps-stamp"
need_pip=0
[ "${S3GATE_DEPS_UPGRADE:-0}" = 1 ] && need_pip=1
[ -n "$(find "$stamp" -mmin -1440 2>/dev/null)" ] || need_pip=1
for tool in aws cfn-lint kubernetes-validate; do
    [ -x "$venv/bin/$tool" ] || need_pip=1
done
"$venv/bin/python" -c 'import boto3, requests, awscli, dns.resolver, moto.server, werkzeug' 2>/dev/null || need_pip=1
if [ "$need_pip" = 1 ]; then
    echo "install-test-deps: upgrading ${py_packages[*]} in $venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q --upgrade "${py_packages[@]}"
    touch "$stamp"
fi

echo "install-test-deps: versions"
echo "  $("$venv/bin/aws" --version 2>&1)"
"$venv/bin/python" -c 'import boto3, botocore, requests
print(f"  boto3 {boto3.__version__}, botocore {botocore.__version__}, requests {requests.__version__}")'
echo "  $(env -u AWS_CA_BUNDLE rclone version 2>/dev/null | head -n1)"
echo "  s3cmd $(s3cmd --version 2>&1 | awk '{print $NF}')"
echo "  $(nginx -v 2>&1)"
echo "  $(/usr/sbin/squid -v 2>/dev/null | head -n1)"
echo "  $(curl --version | head -n1)"
echo "  $(dig -v 2>&1 | head -n1), $(dnsmasq --version | head -n1)"
echo "  cfn-lint $("$venv/bin/cfn-lint" --version 2>&1 | awk '{print $NF}'), kubernetes-validate $("$venv/bin/kubernetes-validate" --version 2>&1)"
echo "  $(systemd-analyze --version | head -n1)"
