#!/usr/bin/env bash
# bench/transparent.sh: throughput of a 1 GiB HTTPS download direct vs through s3gate's
# transparent (SNI passthrough) listener vs through its forward proxy (CONNECT), on 127.0.0.1.
#
#   bench/transparent.sh [--rounds N] [--size MiB]
#
# A local nginx serves a file over TLS (throwaway self-signed certificate for bench.test); curl
# downloads it directly, with `--connect-to` to `s3gate serve --listen none --transparent-listen`
# (the client's TLS passes through by its SNI, as when DNS sends the name to s3gate), and with
# `-x` to `s3gate serve --listen none --forward-listen`. The three run in turn (the two s3gate
# paths alternate which goes first), N rounds (default 5); the median time of each is reported
# with s3gate's CPU time per GiB and peak RSS. Prints a markdown table for docs/benchmarks.md.
# Needs nginx, curl and openssl (scripts/install-test-deps.sh); builds the release binary, or
# uses S3GATE_BIN. KEEP=1 keeps the temp folder.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=5
SIZE_MIB=1024
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=${2:?--rounds needs a number}; shift ;;
        --size) SIZE_MIB=${2:?--size needs MiB}; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "transparent.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

for tool in nginx curl openssl; do
    command -v "$tool" >/dev/null || { echo "transparent.sh: $tool not found: run scripts/install-test-deps.sh" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/s3gate-transparent-bench.XXXXXX")
# nginx's worker drops privileges when started as root: it must reach in here.
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "transparent.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
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
    echo "transparent.sh: $what did not start on port $port" >&2
    exit 1
}

if [ -n "${S3GATE_BIN:-}" ]; then
    S3GATE=$S3GATE_BIN
else
    echo "transparent.sh: building the release binary" >&2
    (cd "$ROOT" && cargo build --release --bins --quiet)
    S3GATE="${CARGO_TARGET_DIR:-$ROOT/target}/release/s3gate"
fi

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

# s3gate twice, so that each path's CPU time is its own: the transparent listener sending
# bench.test to the origin, and the forward proxy allowed bench.test on the origin's port only.
TRANSPARENT_PORT=$(free_port)
"$S3GATE" serve --listen none --transparent-listen "127.0.0.1:$TRANSPARENT_PORT" \
    --transparent-allow bench.test --transparent-connect-to "bench.test=127.0.0.1:$ORIGIN_PORT" \
    2>"$WORK/transparent.log" &
TRANSPARENT_PID=$!
PIDS+=("$TRANSPARENT_PID")
wait_port "$TRANSPARENT_PORT" "s3gate (transparent)"
FORWARD_PORT=$(free_port)
"$S3GATE" serve --listen none --forward-listen "127.0.0.1:$FORWARD_PORT" \
    --forward-allow bench.test --forward-allow-port "$ORIGIN_PORT" \
    --forward-connect-to "bench.test=127.0.0.1" 2>"$WORK/forward.log" &
FORWARD_PID=$!
PIDS+=("$FORWARD_PID")
wait_port "$FORWARD_PORT" "s3gate (forward)"

URL="https://bench.test:$ORIGIN_PORT/object.bin"
# Prints seconds for one download; fails unless every byte arrived.
fetch() {
    local out
    out=$(curl -sS --fail -o /dev/null --cacert "$WORK/cert.pem" -w '%{size_download} %{time_total}' "$@" "$URL")
    local size=${out% *}
    [ "$size" = $((SIZE_MIB * 1024 * 1024)) ] || { echo "transparent.sh: got $size bytes with $*" >&2; exit 1; }
    echo "${out#* }"
}

# CPU time (user + system, clock ticks) of a process: what s3gate spends per byte, which other
# load on the machine does not change the way it changes wall time.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}

declare -A TIMES
CPU_TRANSPARENT=0
CPU_FORWARD=0
WINS=0
for round in $(seq 1 "$ROUNDS"); do
    d=$(fetch --resolve "bench.test:$ORIGIN_PORT:127.0.0.1")
    for who in $([ $((round % 2)) = 1 ] && echo "transparent forward" || echo "forward transparent"); do
        if [ "$who" = transparent ]; then
            before=$(cpu_ticks "$TRANSPARENT_PID")
            t=$(fetch --connect-to "bench.test:$ORIGIN_PORT:127.0.0.1:$TRANSPARENT_PORT")
            CPU_TRANSPARENT=$((CPU_TRANSPARENT + $(cpu_ticks "$TRANSPARENT_PID") - before))
        else
            before=$(cpu_ticks "$FORWARD_PID")
            f=$(fetch -x "http://127.0.0.1:$FORWARD_PORT")
            CPU_FORWARD=$((CPU_FORWARD + $(cpu_ticks "$FORWARD_PID") - before))
        fi
    done
    TIMES[direct]+="$d " TIMES[transparent]+="$t " TIMES[forward]+="$f "
    if awk -v t="$t" -v f="$f" 'BEGIN {exit !(t <= f)}'; then WINS=$((WINS + 1)); fi
    echo "transparent.sh: round $round: direct ${d}s, transparent ${t}s, forward ${f}s" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mibps() { awk -v s="$1" -v m="$SIZE_MIB" 'BEGIN {printf "%.0f", m / s}'; }
cpu_per_gib() {
    awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v m="$SIZE_MIB" -v r="$ROUNDS" 'BEGIN {printf "%.2f", t / hz / (m * r / 1024)}'
}
peak_mib() {
    echo $(($(awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0) / 1024))
}

direct=$(echo "${TIMES[direct]}" | median)
transparent=$(echo "${TIMES[transparent]}" | median)
forward=$(echo "${TIMES[forward]}" | median)
ratio=$(awk -v a="$forward" -v b="$transparent" 'BEGIN {printf "%.2f", a / b}')

echo
echo "$SIZE_MIB MiB over HTTPS, curl -> [s3gate] -> nginx, median of $ROUNDS rounds, $(nproc) cores:"
echo
echo "| path | seconds | MiB/s | s3gate CPU s per GiB | s3gate peak RSS |"
echo "| --- | ---: | ---: | ---: | ---: |"
echo "| direct | $direct | $(mibps "$direct") | | |"
echo "| s3gate transparent (SNI passthrough) | $transparent | $(mibps "$transparent") | $(cpu_per_gib "$CPU_TRANSPARENT") | $(peak_mib "$TRANSPARENT_PID") MiB |"
echo "| s3gate forward proxy (CONNECT) | $forward | $(mibps "$forward") | $(cpu_per_gib "$CPU_FORWARD") | $(peak_mib "$FORWARD_PID") MiB |"
echo
echo "transparent / forward throughput: ${ratio}x (target >= 1.0x); transparent was at least as fast in $WINS of $ROUNDS rounds"
