#!/usr/bin/env bash
# bench/forward.sh: throughput of a 1 GiB HTTPS download through a CONNECT tunnel, direct vs
# s3gate's forward proxy vs Debian's squid as a CONNECT proxy, in one run, on 127.0.0.1.
#
#   bench/forward.sh [--rounds N] [--size MiB]
#
# A local nginx serves a file over TLS (throwaway self-signed certificate for bench.test); curl
# downloads it directly, through `s3gate serve --listen none --forward-listen`, and through squid
# (non-daemon, its own config: CONNECT to the bench port only, no cache). The three run in turn
# (the proxies alternate which goes first),
# N rounds (default 5); the median time of each is reported with the proxies' CPU time per GiB
# (steadier than wall time when the machine is busy) and peak RSS. Prints a
# markdown table for docs/benchmarks.md. Needs nginx, squid, curl and openssl
# (scripts/install-test-deps.sh); builds the release binary. KEEP=1 keeps the temp folder.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=5
SIZE_MIB=1024
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=${2:?--rounds needs a number}; shift ;;
        --size) SIZE_MIB=${2:?--size needs MiB}; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "forward.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

for tool in nginx curl openssl; do
    command -v "$tool" >/dev/null || { echo "forward.sh: $tool not found: run scripts/install-test-deps.sh" >&2; exit 1; }
done
SQUID=$(command -v squid || echo /usr/sbin/squid)
[ -x "$SQUID" ] || { echo "forward.sh: squid not found: run scripts/install-test-deps.sh" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/s3gate-forward-bench.XXXXXX")
# nginx's worker and squid drop privileges when started as root: they must reach in here.
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "forward.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    local port=$1 what=$2
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "forward.sh: $what did not start on port $port" >&2
    exit 1
}

echo "forward.sh: building the release binary" >&2
(cd "$ROOT" && cargo build --release --bins --quiet)
S3GATE="$ROOT/target/release/s3gate"

# The origin: nginx over TLS, one file.
mkdir -p "$WORK/www" "$WORK/nginx"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$WORK/www/object.bin"
chmod 644 "$WORK/www/object.bin"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench.test" -addext "subjectAltName=DNS:bench.test" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
ORIGIN_PORT=$(free_port)
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    server {
        listen 127.0.0.1:$ORIGIN_PORT ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        root $WORK/www;
    }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
PIDS+=($!)
wait_port "$ORIGIN_PORT" nginx

# s3gate: only the forward listener, bench.test on the origin's port only.
S3GATE_PORT=$(free_port)
"$S3GATE" serve --listen none --forward-listen "127.0.0.1:$S3GATE_PORT" \
    --forward-allow bench.test --forward-allow-port "$ORIGIN_PORT" \
    --forward-connect-to "bench.test=127.0.0.1" 2>"$WORK/s3gate.log" &
S3GATE_PID=$!
PIDS+=("$S3GATE_PID")
wait_port "$S3GATE_PORT" s3gate

# squid: a CONNECT proxy for localhost, the bench port only, no cache; bench.test from a hosts
# file. It drops to the proxy user, so its files live in a folder that user owns.
SQUID_PORT=$(free_port)
mkdir -p "$WORK/squid"
echo "127.0.0.1 bench.test" >"$WORK/squid/hosts"
cat >"$WORK/squid/squid.conf" <<EOF
http_port 127.0.0.1:$SQUID_PORT
acl SSL_ports port $ORIGIN_PORT
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
http_access allow localhost
http_access deny all
cache deny all
cache_mem 8 MB
hosts_file $WORK/squid/hosts
pid_filename $WORK/squid/squid.pid
cache_log $WORK/squid/cache.log
access_log none
coredump_dir $WORK/squid
shutdown_lifetime 1 seconds
EOF
if [ "$(id -u)" -eq 0 ]; then chown -R proxy "$WORK/squid" 2>/dev/null || true; fi
"$SQUID" -N -f "$WORK/squid/squid.conf" &
SQUID_PID=$!
PIDS+=("$SQUID_PID")
wait_port "$SQUID_PORT" squid

URL="https://bench.test:$ORIGIN_PORT/object.bin"
# Prints seconds for one download; fails unless every byte arrived.
fetch() {
    local out
    out=$(curl -sS --fail -o /dev/null --cacert "$WORK/cert.pem" -w '%{size_download} %{time_total}' "$@" "$URL")
    local size=${out% *}
    [ "$size" = $((SIZE_MIB * 1024 * 1024)) ] || { echo "forward.sh: got $size bytes with $*" >&2; exit 1; }
    echo "${out#* }"
}

# CPU time (user + system, clock ticks) of a process and its children: what a proxy spends
# per byte, which other load on the machine does not change the way it changes wall time.
cpu_ticks() {
    local total=0 pid t
    for pid in "$1" $(pgrep -P "$1" || true); do
        t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

declare -A TIMES
CPU_S3GATE=0
CPU_SQUID=0
WINS=0
for round in $(seq 1 "$ROUNDS"); do
    d=$(fetch --resolve "bench.test:$ORIGIN_PORT:127.0.0.1")
    # The two proxies take turns going first, so neither always follows the same run.
    for who in $([ $((round % 2)) = 1 ] && echo "s3gate squid" || echo "squid s3gate"); do
        if [ "$who" = s3gate ]; then
            before=$(cpu_ticks "$S3GATE_PID")
            g=$(fetch -x "http://127.0.0.1:$S3GATE_PORT")
            CPU_S3GATE=$((CPU_S3GATE + $(cpu_ticks "$S3GATE_PID") - before))
        else
            before=$(cpu_ticks "$SQUID_PID")
            q=$(fetch -x "http://127.0.0.1:$SQUID_PORT")
            CPU_SQUID=$((CPU_SQUID + $(cpu_ticks "$SQUID_PID") - before))
        fi
    done
    TIMES[direct]+="$d " TIMES[s3gate]+="$g " TIMES[squid]+="$q "
    if awk -v g="$g" -v q="$q" 'BEGIN {exit !(g < q)}'; then WINS=$((WINS + 1)); fi
    echo "forward.sh: round $round: direct ${d}s, s3gate ${g}s, squid ${q}s" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mibps() { awk -v s="$1" -v m="$SIZE_MIB" 'BEGIN {printf "%.0f", m / s}'; }
# Proxy CPU seconds per GiB carried, over all rounds.
cpu_per_gib() {
    awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v m="$SIZE_MIB" -v r="$ROUNDS" 'BEGIN {printf "%.2f", t / hz / (m * r / 1024)}'
}
# Peak RSS of a process and its children (squid forks its worker), in MiB.
peak_mib() {
    local total=0 pid kib
    for pid in "$1" $(pgrep -P "$1" || true); do
        kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${kib:-0}))
    done
    echo $((total / 1024))
}

direct=$(echo "${TIMES[direct]}" | median)
s3gate=$(echo "${TIMES[s3gate]}" | median)
squid=$(echo "${TIMES[squid]}" | median)
ratio=$(awk -v a="$squid" -v b="$s3gate" 'BEGIN {printf "%.2f", a / b}')

echo
echo "$SIZE_MIB MiB over HTTPS, curl -> [proxy] -> nginx, median of $ROUNDS rounds, $(nproc) cores:"
echo
echo "| path | seconds | MiB/s | proxy CPU s per GiB | proxy peak RSS |"
echo "| --- | ---: | ---: | ---: | ---: |"
echo "| direct | $direct | $(mibps "$direct") | | |"
echo "| s3gate forward proxy | $s3gate | $(mibps "$s3gate") | $(cpu_per_gib "$CPU_S3GATE") | $(peak_mib "$S3GATE_PID") MiB |"
echo "| squid $("$SQUID" -v | head -n1 | awk '{print $4}') | $squid | $(mibps "$squid") | $(cpu_per_gib "$CPU_SQUID") | $(peak_mib "$SQUID_PID") MiB |"
echo
echo "s3gate / squid throughput: ${ratio}x (target >= 1.0x); s3gate was faster in $WINS of $ROUNDS rounds"
