#!/usr/bin/env bash
# bench/run.sh: compare s3gate with nginx as a plain reverse proxy, and with the origin itself,
# on this machine, and print a markdown report (see docs/benchmarks.md).
#
#   bench/run.sh [--quick] [--rounds N] [--out FILE]
#
# It builds the release binaries and starts, all on 127.0.0.1:
# - two origins: the fast one (Debian's nginx serving objects as static files and storing PUTs
#   with WebDAV, data on tmpfs: bench/origin.conf.template), where the proxy is the bottleneck,
#   and `s3gate store` (the embedded s3s-fs store), a realistic S3 server that saturates first;
# - in front of each, nginx (plain proxy_pass, bench/nginx.conf.template) and `s3gate serve`,
#   over HTTP, and for the fast origin also over HTTPS (TLS 1.3, both terminating TLS with the
#   same throwaway certificate);
# - for the memory tests, a fresh s3gate in front of each origin and of an origin that answers a
#   PUT before its body has arrived (bench/early-origin.conf.template);
# - for 4 KiB GETs over HTTP, the floor: a bare hyper proxy with s3gate's threading and none of
#   its work (examples/hyper_floor.rs), in front of the fast origin.
# s3gate-bench drives each target; targets take turns within each of N rounds (default 3), and
# the median round is reported, so a burst of other work on the machine spoils one round, not the
# result. Targets that are missed are reported, not fatal; everything started is stopped on exit.
# `--quick` is a smoke run (one round, short durations, 32 MiB objects in the memory tests).
# KEEP=1 keeps the temp folder (logs, raw JSON) for inspection; BIN=DIR takes s3gate and
# s3gate-bench from DIR instead of building them. BASE=DIR runs the s3gate in DIR beside it as a
# baseline (targets .../base, in the same rounds) and adds a table comparing the two builds.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
ROUNDS=""
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS=${2:?--rounds needs a number}; shift ;;
        --out) OUT=${2:?--out needs a file}; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    SMALL_SECS=3; LARGE_SECS=3; MEM_SIZE=32MiB; ROUNDS=${ROUNDS:-1}
else
    SMALL_SECS=8; LARGE_SECS=10; MEM_SIZE=256MiB; ROUNDS=${ROUNDS:-3}
fi
MEM_CLIENTS=16
REGION=us-east-1
BUCKET=bench

log() { echo "run.sh: $*" >&2; }

# --- tools -------------------------------------------------------------------------------------
need_pkg() { # command package
    command -v "$1" >/dev/null 2>&1 && return
    log "installing $2"
    apt-get update -qq >&2 && apt-get install -y -qq "$2" >&2
}
need_pkg nginx nginx
need_pkg jq jq
need_pkg openssl openssl
NGINX=$(command -v nginx)

LOAD=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$LOAD" 'BEGIN { exit !(l > 0.5) }' && log "warning: load average $LOAD: other work will skew the numbers"
if [ -n "${BIN:-}" ]; then
    log "using the binaries in $BIN"
else
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --bins --example hyper_floor >&2)
    BIN="$ROOT/target/release"
fi
FLOOR_BIN=""
for f in "$BIN/examples/hyper_floor" "$BIN/hyper_floor"; do [ -x "$f" ] && FLOOR_BIN=$f && break; done
[ -n "$FLOOR_BIN" ] || log "no hyper_floor in $BIN: the floor target is left out"

# --- processes and cleanup ---------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/s3gate-bench.XXXXXX")
# Objects live in RAM (tmpfs) when there is room: the run measures proxies, and disk writeback
# would take CPU from them on a small machine.
if [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -gt $((8 * 1024 * 1024)) ] 2>/dev/null; then
    DATA_ROOT=$(mktemp -d /dev/shm/s3gate-bench-data.XXXXXX)
else
    DATA_ROOT="$WORK/data"; mkdir -p "$DATA_ROOT"
fi
chmod a+rx "$DATA_ROOT"
PIDS=()
stop_pid() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    rm -rf "$DATA_ROOT"
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 20000))
        port_open "$port" || { echo "$port"; return; }
    done
}

wait_port() { # port pid name
    for _ in $(seq 100); do
        port_open "$1" && return
        kill -0 "$2" 2>/dev/null || { log "$3 exited; its log:"; cat "$WORK/$3.log" >&2; exit 1; }
        sleep 0.1
    done
    log "$3 did not listen on $1 within 10 s"; exit 1
}

random_key() { # charset length (reads a fixed amount: `tr | head` would die of SIGPIPE under pipefail)
    local key
    key=$(head -c 4096 /dev/urandom | LC_ALL=C tr -dc "$1")
    echo "${key:0:$2}"
}

STORE_AK="STORE$(random_key 'A-Z0-9' 15)"; STORE_SK=$(random_key 'A-Za-z0-9' 40)
CLIENT_AK="CLIENT$(random_key 'A-Z0-9' 14)"; CLIENT_SK=$(random_key 'A-Za-z0-9' 40)

# A throwaway CA and a certificate for 127.0.0.1, used by both TLS-terminating proxies.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench-ca \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
    -keyout "$WORK/tls.key" -out "$WORK/tls.csr" 2>/dev/null
openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -days 2 \
    -extfile <(printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n') -out "$WORK/tls.pem" 2>/dev/null

# Starts nginx from a template; sets NGINX_PID. Extra `@NAME@=value` pairs fill placeholders.
start_nginx() { # name template listen-port [@NAME@=value ...]
    local name=$1 template=$2 port=$3; shift 3
    local dir="$WORK/$name" args=(-e "s|@PREFIX@|$WORK/$name|g" -e "s|@LISTEN@|127.0.0.1:$port|g") kv
    mkdir -p "$dir"
    for kv in "$@"; do args+=(-e "s|${kv%%=*}|${kv#*=}|g"); done
    sed "${args[@]}" "$ROOT/bench/$template" >"$dir/nginx.conf"
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$WORK/$name.log" 2>&1 &
    NGINX_PID=$!; PIDS+=("$NGINX_PID")
    wait_port "$port" "$NGINX_PID" "$name"
}

# Starts `s3gate serve` in front of an origin; sets GATE_PID. Extra arguments go to s3gate.
start_gate() { # name port origin-port [args...]
    local name=$1 port=$2 origin=$3; shift 3
    "${GATE_BIN:-$BIN}/s3gate" serve --listen "127.0.0.1:$port" --upstream "http://127.0.0.1:$origin" \
        --upstream-credentials "$STORE_AK:$STORE_SK" --credentials "$CLIENT_AK:$CLIENT_SK" \
        --region "$REGION" --shutdown-grace 1 "$@" >"$WORK/$name.log" 2>&1 &
    GATE_PID=$!; PIDS+=("$GATE_PID")
    wait_port "$port" "$GATE_PID" "$name"
}

# The fast origin and the proxies in front of it, over HTTP and HTTPS.
FAST_DATA="$DATA_ROOT/fast"; mkdir -p "$FAST_DATA/.upload"
# nginx workers run as an unprivileged user when started by root: they must write here.
chmod a+rwx "$FAST_DATA" "$FAST_DATA/.upload"
FAST_PORT=$(free_port)
start_nginx fast-origin origin.conf.template "$FAST_PORT" "@DATA@=$FAST_DATA"; FAST_ORIGIN_PID=$NGINX_PID
FAST_NGINX_PORT=$(free_port); FAST_NGINX_TLS_PORT=$(free_port)
start_nginx fast-nginx nginx.conf.template "$FAST_NGINX_PORT" "@UPSTREAM@=127.0.0.1:$FAST_PORT" \
    "@TLS_LISTEN@=127.0.0.1:$FAST_NGINX_TLS_PORT" "@CERT@=$WORK/tls.pem" "@KEY@=$WORK/tls.key"
FAST_NGINX_PID=$NGINX_PID
FAST_GATE_PORT=$(free_port); start_gate fast-s3gate "$FAST_GATE_PORT" "$FAST_PORT"; FAST_GATE_PID=$GATE_PID
FAST_GATE_TLS_PORT=$(free_port)
start_gate fast-s3gate-tls "$FAST_GATE_TLS_PORT" "$FAST_PORT" --tls-cert "$WORK/tls.pem" --tls-key "$WORK/tls.key"
FAST_GATE_TLS_PID=$GATE_PID
if [ -n "$FLOOR_BIN" ]; then
    FAST_FLOOR_PORT=$(free_port)
    "$FLOOR_BIN" "127.0.0.1:$FAST_FLOOR_PORT" "127.0.0.1:$FAST_PORT" >"$WORK/fast-floor.log" 2>&1 &
    FAST_FLOOR_PID=$!; PIDS+=("$FAST_FLOOR_PID")
    wait_port "$FAST_FLOOR_PORT" "$FAST_FLOOR_PID" fast-floor
fi

# The s3s-fs store and the proxies in front of it, over HTTP.
STORE_DATA="$DATA_ROOT/store"; mkdir -p "$STORE_DATA"
STORE_PORT=$(free_port)
"$BIN/s3gate" store --listen "127.0.0.1:$STORE_PORT" --data "$STORE_DATA" \
    --credentials "$STORE_AK:$STORE_SK" >"$WORK/store.log" 2>&1 &
STORE_PID=$!; PIDS+=("$STORE_PID")
wait_port "$STORE_PORT" "$STORE_PID" store
STORE_NGINX_PORT=$(free_port)
start_nginx store-nginx nginx.conf.template "$STORE_NGINX_PORT" "@UPSTREAM@=127.0.0.1:$STORE_PORT" \
    "@TLS_LISTEN@=127.0.0.1:$(free_port)" "@CERT@=$WORK/tls.pem" "@KEY@=$WORK/tls.key"
STORE_NGINX_PID=$NGINX_PID
STORE_GATE_PORT=$(free_port); start_gate store-s3gate "$STORE_GATE_PORT" "$STORE_PORT"; STORE_GATE_PID=$GATE_PID

# The baseline build, if any, in front of the same origins.
if [ -n "${BASE:-}" ]; then
    log "baseline: the s3gate in $BASE"
    FAST_BASE_PORT=$(free_port); GATE_BIN=$BASE start_gate fast-base "$FAST_BASE_PORT" "$FAST_PORT"; FAST_BASE_PID=$GATE_PID
    FAST_BASE_TLS_PORT=$(free_port)
    GATE_BIN=$BASE start_gate fast-base-tls "$FAST_BASE_TLS_PORT" "$FAST_PORT" --tls-cert "$WORK/tls.pem" --tls-key "$WORK/tls.key"
    FAST_BASE_TLS_PID=$GATE_PID
    STORE_BASE_PORT=$(free_port); GATE_BIN=$BASE start_gate store-base "$STORE_BASE_PORT" "$STORE_PORT"; STORE_BASE_PID=$GATE_PID
fi

# --- measuring ---------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)

# CPU ticks (user + system, all threads) used so far by the given processes.
cpu_ticks() {
    local pid total=0 t
    for pid in "$@"; do
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null) || t=0
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# Busy ticks of the whole machine (all CPUs), to see what else ran during a scenario: processes
# (user, nice, system, steal) and interrupts (irq, softirq: where loopback TCP's receive path runs,
# charged to no process).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $9; exit }' /proc/stat; }
irq_ticks() { awk '/^cpu / { print $7 + $8; exit }' /proc/stat; }

with_workers() { echo "$1" $(pgrep -P "$1" || true); }

# A target is origin/scheme/proxy: fast/http/nginx, store/http/s3gate, fast/https/s3gate, ...
# proxy "origin" is the origin itself, without a proxy.
proxy_pids() {
    case "$1" in
        */origin) ;;
        fast/*/nginx) with_workers "$FAST_NGINX_PID" ;;
        store/*/nginx) with_workers "$STORE_NGINX_PID" ;;
        fast/http/s3gate) echo "$FAST_GATE_PID" ;;
        fast/https/s3gate) echo "$FAST_GATE_TLS_PID" ;;
        store/http/s3gate) echo "$STORE_GATE_PID" ;;
        fast/http/base) echo "$FAST_BASE_PID" ;;
        fast/https/base) echo "$FAST_BASE_TLS_PID" ;;
        store/http/base) echo "$STORE_BASE_PID" ;;
        fast/http/floor) echo "$FAST_FLOOR_PID" ;;
    esac
}
origin_pids() {
    case "$1" in
        fast/*) with_workers "$FAST_ORIGIN_PID" ;;
        store/*) echo "$STORE_PID" ;;
    esac
}
endpoint_of() {
    case "$1" in
        fast/http/origin) echo "http://127.0.0.1:$FAST_PORT" ;;
        fast/http/nginx) echo "http://127.0.0.1:$FAST_NGINX_PORT" ;;
        fast/https/nginx) echo "https://127.0.0.1:$FAST_NGINX_TLS_PORT" ;;
        fast/http/s3gate) echo "http://127.0.0.1:$FAST_GATE_PORT" ;;
        fast/https/s3gate) echo "https://127.0.0.1:$FAST_GATE_TLS_PORT" ;;
        store/http/origin) echo "http://127.0.0.1:$STORE_PORT" ;;
        store/http/nginx) echo "http://127.0.0.1:$STORE_NGINX_PORT" ;;
        store/http/s3gate) echo "http://127.0.0.1:$STORE_GATE_PORT" ;;
        fast/http/base) echo "http://127.0.0.1:$FAST_BASE_PORT" ;;
        fast/https/base) echo "https://127.0.0.1:$FAST_BASE_TLS_PORT" ;;
        store/http/base) echo "http://127.0.0.1:$STORE_BASE_PORT" ;;
        fast/http/floor) echo "http://127.0.0.1:$FAST_FLOOR_PORT" ;;
    esac
}

SEQ=0
ROUND=0
# Runs s3gate-bench against a target; appends one JSON line (the bench's report plus the CPU share
# of a core used by the proxy, the origin and the bench itself) to $WORK/results.jsonl.
# Set PROXY_PIDS_OVERRIDE / ORIGIN_PIDS_OVERRIDE to measure processes other than the target's.
bench() { # scenario target bench-args...
    local scenario=$1 target=$2; shift 2
    local ak=$CLIENT_AK sk=$CLIENT_SK
    case "$target" in */s3gate|*/base) ;; *) ak=$STORE_AK; sk=$STORE_SK ;; esac
    local proxy origin
    proxy=${PROXY_PIDS_OVERRIDE:-$(proxy_pids "$target")}; origin=${ORIGIN_PIDS_OVERRIDE:-$(origin_pids "$target")}
    local p0 s0 m0 i0 t0 t1 p1 s1 m1 i1 out times rc=0
    # shellcheck disable=SC2086
    p0=$(cpu_ticks $proxy); s0=$(cpu_ticks $origin); m0=$(machine_ticks); i0=$(irq_ticks)
    t0=$(date +%s.%N)
    log "$scenario -> $target"
    times="$WORK/time.$$"
    out=$( { TIMEFORMAT='%U %S'; time timeout 600 "$BIN/s3gate-bench" --endpoint "${ENDPOINT_OVERRIDE:-$(endpoint_of "$target")}" \
        --ca-file "$WORK/ca.pem" --access-key "$ak" --secret-key "$sk" --region "$REGION" --bucket "$BUCKET" \
        --json "$@" 2>>"$WORK/bench.log"; } 2>"$times" ) || rc=$?
    t1=$(date +%s.%N)
    # shellcheck disable=SC2086
    p1=$(cpu_ticks $proxy); s1=$(cpu_ticks $origin); m1=$(machine_ticks); i1=$(irq_ticks)
    [ -n "$out" ] || out='{"total":{"ok":0,"errors":1,"first_error":"bench failed, see bench.log"}}'
    [ "$rc" = 0 ] || [ "$rc" = 1 ] || log "s3gate-bench exited with $rc"
    SEQ=$((SEQ + 1))
    jq -c --arg scenario "$scenario" --arg target "$target" --argjson seq "$SEQ" --argjson round "$ROUND" \
        --argjson wall "$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')" --argjson tck "$CLK_TCK" \
        --argjson proxy "$((p1 - p0))" --argjson origin "$((s1 - s0))" --argjson machine "$((m1 - m0))" \
        --argjson irq "$((i1 - i0))" --arg btimes "$(tail -n 1 "$times")" \
        '. + {scenario: $scenario, target: $target, seq: $seq, round: $round, wall: $wall,
              proxy_cpu_s: (if ($target | endswith("/origin")) then null else $proxy / $tck end),
              cpu_proxy: (if ($target | endswith("/origin")) then null else $proxy / $tck / $wall end),
              cpu_store: ($origin / $tck / $wall),
              cpu_bench: (($btimes | split(" ") | map(tonumber) | add) / $wall)}
         | . + {cpu_irq: ($irq / $tck / $wall), cpu_other: ([($machine / $tck / $wall) - (.cpu_proxy // 0) - .cpu_store - .cpu_bench, 0] | max)}' \
        <<<"$out" >>"$WORK/results.jsonl"
}

# Samples a process's VmRSS every 100 ms into a file until killed.
sample_rss() { # pid
    while kill -0 "$1" 2>/dev/null; do
        awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true
        sleep 0.1
    done
}

TARGETS_HTTP=(fast/http/origin fast/http/nginx fast/http/s3gate)
TARGETS_HTTPS=(fast/https/nginx fast/https/s3gate)
TARGETS_STORE=(store/http/origin store/http/nginx store/http/s3gate)
if [ -n "${BASE:-}" ]; then
    TARGETS_HTTP+=(fast/http/base); TARGETS_HTTPS+=(fast/https/base); TARGETS_STORE+=(store/http/base)
fi
TARGETS_SMALL=("${TARGETS_HTTP[@]}")
[ -z "$FLOOR_BIN" ] || TARGETS_SMALL+=(fast/http/floor)
for ROUND in $(seq "$ROUNDS"); do
    log "round $ROUND of $ROUNDS"
    for target in "${TARGETS_SMALL[@]}" "${TARGETS_HTTPS[@]}" "${TARGETS_STORE[@]}"; do
        bench "4 KiB GET" "$target" --op get --size 4KiB --keys 64 --concurrency 16 --duration "$SMALL_SECS"
    done
    for target in "${TARGETS_HTTP[@]}" "${TARGETS_HTTPS[@]}" "${TARGETS_STORE[@]}"; do
        bench "64 MiB GET" "$target" --op get --size 64MiB --keys 4 --concurrency 4 --duration "$LARGE_SECS"
    done
    for target in "${TARGETS_HTTP[@]}" "${TARGETS_HTTPS[@]}" "${TARGETS_STORE[@]}"; do
        bench "64 MiB PUT" "$target" --op put --size 64MiB --concurrency 4 --duration "$LARGE_SECS"
    done
done

# The memory tests: a fresh s3gate in front of each origin, 16 clients each PUT and GET back a
# large object while its VmRSS is sampled. The early origin answers every PUT at once.
EARLY_DATA="$DATA_ROOT/early"; mkdir -p "$EARLY_DATA"
head -c "${MEM_SIZE%iB}" /dev/zero >"$EARLY_DATA/object" # head reads 256M as 256 MiB
EARLY_PORT=$(free_port)
start_nginx early-origin early-origin.conf.template "$EARLY_PORT" "@DATA@=$EARLY_DATA"; EARLY_ORIGIN_PID=$NGINX_PID
MEMORY=()
memory_test() { # label origin-port origin-pids
    local label=$1 port=$2 origins=$3 gate_port before peak samples hwm
    gate_port=$(free_port)
    start_gate "memory-$label" "$gate_port" "$port"
    before=$(awk '/^VmRSS:/ { print $2 }' "/proc/$GATE_PID/status")
    sample_rss "$GATE_PID" >"$WORK/rss-$label.txt" &
    local sampler=$!
    PROXY_PIDS_OVERRIDE=$GATE_PID ORIGIN_PIDS_OVERRIDE=$origins ENDPOINT_OVERRIDE="http://127.0.0.1:$gate_port" \
        bench "memory: ${MEM_CLIENTS}x $MEM_SIZE PUT+GET, $label" "$label/http/s3gate" --op putget \
        --size "$MEM_SIZE" --concurrency "$MEM_CLIENTS" --requests "$MEM_CLIENTS" --timeout 300
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    peak=$(sort -n "$WORK/rss-$label.txt" | tail -n 1); samples=$(wc -l <"$WORK/rss-$label.txt")
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$GATE_PID/status")
    MEMORY+=("$label|${before:-0}|${peak:-0}|$samples|${hwm:-0}")
    stop_pid "$GATE_PID"
}
memory_test fast "$FAST_PORT" "$(with_workers "$FAST_ORIGIN_PID")"
memory_test store "$STORE_PORT" "$STORE_PID"
memory_test early "$EARLY_PORT" "$(with_workers "$EARLY_ORIGIN_PID")"

# --- the report --------------------------------------------------------------------------------
# One line per scenario and target: the median round by the scenario's key figure (ops/s for small
# objects, MiB/s for large ones), with the range over all rounds.
R="$WORK/median.jsonl"
jq -c -s 'map(. + {key: (if .scenario == "4 KiB GET" then .total.ops_per_s else .total.mib_per_s end)})
          | group_by([.scenario, .target])
          | map(sort_by(.key) as $g
                | $g[(($g | length) - 1) / 2 | floor]
                + {seq: ($g | map(.seq) | min), rounds: ($g | length),
                   range: "\($g[0].key)–\($g[-1].key)"})
          | sort_by(.seq) | .[]' "$WORK/results.jsonl" >"$R"
verdict() { awk -v r="$1" -v min="$2" 'BEGIN { print (r != "n/a" && r + 0 >= min) ? "pass" : "**FAIL**" }'; }
# The s3gate/nginx ratio of each round (the two ran back to back) and their median: steadier than
# the ratio of two medians that may come from different rounds.
round_ratios() { # scenario origin/scheme field [proxy, default s3gate]
    jq -s -r --arg s "$1" --arg p "$2" --arg f "$3" --arg g "${4:-s3gate}" '
        map(select(.scenario == $s)) | group_by(.round)
        | map((map(select(.target == $p + "/" + $g))[0].total[$f] // 0) as $g
              | (map(select(.target == $p + "/nginx"))[0].total[$f] // 0) as $n
              | if $n > 0 then $g / $n else empty end)
        | if length == 0 then "n/a n/a"
          else (sort | .[(length - 1) / 2 | floor] * 100 | round / 100 | tostring)
               + " " + (map(. * 100 | round / 100 | tostring) | join(",")) end' "$WORK/results.jsonl"
}
# CPU a proxy spent per request (µs) or per GiB moved (s), over all rounds of a scenario.
cpu_cost() { # scenario target
    jq -s -r --arg s "$1" --arg t "$2" '
        map(select(.scenario == $s and .target == $t and .proxy_cpu_s != null))
        | if length == 0 then "-" else
            (map(.proxy_cpu_s) | add) as $cpu | (map(.total.ok) | add) as $ok | (map(.total.bytes) | add) as $b
            | if ($s | startswith("4 KiB")) then (if $ok > 0 then "\($cpu / $ok * 1e6 | round) µs/req" else "-" end)
              else (if $b > 0 then "\($cpu / ($b / 1073741824) * 100 | round / 100) s/GiB" else "-" end) end
          end' "$WORK/results.jsonl"
}
check() { # scenario origin/scheme field minimum
    local s n r rounds unit=ops/s
    [ "$3" = ops_per_s ] || unit=MiB/s
    s=$(jq -r --arg s "$1" --arg t "$2/s3gate" "select(.scenario == \$s and .target == \$t) | .total.$3 // 0" "$R")
    n=$(jq -r --arg s "$1" --arg t "$2/nginx" "select(.scenario == \$s and .target == \$t) | .total.$3 // 0" "$R")
    read -r r rounds <<<"$(round_ratios "$1" "$2" "$3")"
    echo "| $1 $unit, $2 | $s | $n | $r | ${rounds//,/, } | $(cpu_cost "$1" "$2/s3gate") | $(cpu_cost "$1" "$2/nginx") | >= $4 | $(verdict "$r" "$4") |"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

report() {
    echo "Machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
         "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r);" \
         "data on $(df -P "$DATA_ROOT" | awk 'NR == 2 { print $1 }');" \
         "$("$NGINX" -v 2>&1 | sed 's|.*/||; s|^|nginx |')$([ "$QUICK" = 1 ] && echo '; quick run')."
    echo
    echo "| scenario | target | ops/s | MiB/s | range | p50 ms | p99 ms | max ms | errors | CPU proxy | CPU origin | CPU bench | CPU softirq | CPU other |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    jq -r '[.scenario, .target, .total.ops_per_s, .total.mib_per_s, .range, .total.p50_ms, .total.p99_ms,
            .total.max_ms, .total.errors,
            (if .cpu_proxy == null then "-" else "\(.cpu_proxy * 100 | round)%" end),
            "\(.cpu_store * 100 | round)%", "\(.cpu_bench * 100 | round)%",
            "\(.cpu_irq * 100 | round)%", "\(.cpu_other * 100 | round)%"]
           | "| " + (map(tostring) | join(" | ")) + " |"' "$R"
    echo
    echo "Targets are origin/scheme/proxy: \`fast\` is nginx serving static files and WebDAV PUT," \
         "\`store\` the s3s-fs store; \`origin\` is the origin without a proxy. Each line is the median of $ROUNDS" \
         "round(s) by ops/s (4 KiB) or MiB/s (64 MiB); range is that figure's lowest–highest over the rounds."
    echo "CPU columns: share of one core over the bench run ($(nproc) cores = $(( $(nproc) * 100 ))%): user + system time of" \
         "the proxy, the origin and the bench client; softirq (irq + softirq, mostly loopback TCP receive," \
         "charged to no process); other (all other processes and steal: should be near 0%)."
    echo
    echo "| check | s3gate | nginx | s3gate/nginx | per round | s3gate CPU | nginx CPU | target | result |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    local p
    for p in fast/http fast/https store/http; do
        check "4 KiB GET" "$p" ops_per_s 1.0
        check "64 MiB GET" "$p" mib_per_s 1.0
        check "64 MiB PUT" "$p" mib_per_s 1.0
    done
    local m label before peak samples hwm ok
    for m in "${MEMORY[@]}"; do
        IFS='|' read -r label before peak samples hwm <<<"$m"
        ok=$(awk -v k="$peak" 'BEGIN { print (k > 0 && k < 64 * 1024) ? "pass" : "**FAIL**" }')
        echo "| s3gate peak VmRSS, ${MEM_CLIENTS}x $MEM_SIZE PUT+GET, $label origin | $(mib "$peak") MiB | | | | | | < 64 MiB | $ok |"
    done
    if [ -n "$FLOOR_BIN" ]; then
        local rf rf_rounds rs
        read -r rf rf_rounds <<<"$(round_ratios "4 KiB GET" fast/http ops_per_s floor)"
        read -r rs _ <<<"$(round_ratios "4 KiB GET" fast/http ops_per_s)"
        echo
        echo "The floor: a bare hyper reverse proxy with s3gate's threading and none of its work" \
             "(\`examples/hyper_floor.rs\`: no SigV4, policy, metrics or log), in the same rounds."
        echo
        echo "| check | floor/nginx | per round | s3gate/nginx | floor CPU | s3gate CPU | nginx CPU |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        echo "| 4 KiB GET ops/s, fast/http | $rf | ${rf_rounds//,/, } | $rs | $(cpu_cost "4 KiB GET" fast/http/floor)" \
             "| $(cpu_cost "4 KiB GET" fast/http/s3gate) | $(cpu_cost "4 KiB GET" fast/http/nginx) |"
    fi
    if [ -n "${BASE:-}" ]; then
        echo
        echo "Baseline: the s3gate in \`$BASE\` (base) beside this build, in the same rounds."
        echo
        echo "| check | base/nginx | s3gate/nginx | base CPU | s3gate CPU |"
        echo "|---|---:|---:|---:|---:|"
        local sc f rb rs
        for p in fast/http fast/https store/http; do
            for sc in "4 KiB GET" "64 MiB GET" "64 MiB PUT"; do
                f=mib_per_s; [ "$sc" = "4 KiB GET" ] && f=ops_per_s
                read -r rb _ <<<"$(round_ratios "$sc" "$p" "$f" base)"
                read -r rs _ <<<"$(round_ratios "$sc" "$p" "$f")"
                echo "| $sc, $p | $rb | $rs | $(cpu_cost "$sc" "$p/base") | $(cpu_cost "$sc" "$p/s3gate") |"
            done
        done
    fi
    echo
    echo "CPU: the proxy's CPU time per request (4 KiB GET) or per GiB moved (64 MiB), over all rounds."
    echo "Memory tests: VmRSS of a fresh s3gate sampled every 100 ms; \`early\` is an origin that answers each PUT"
    echo "before its body has arrived."
    for m in "${MEMORY[@]}"; do
        IFS='|' read -r label before peak samples hwm <<<"$m"
        echo "- $label: $samples samples, before $(mib "$before") MiB, peak $(mib "$peak") MiB, VmHWM after $(mib "$hwm") MiB."
    done
    local errs
    errs=$(jq -r 'select(.total.errors > 0) | "- \(.scenario) -> \(.target): \(.total.errors) errors, first: \(.total.first_error)"' "$WORK/results.jsonl")
    if [ -n "$errs" ]; then echo; echo "Errors:"; echo "$errs"; fi
}

report >"$WORK/report.md"
cat "$WORK/report.md"
if [ -n "$OUT" ]; then
    cp "$WORK/report.md" "$OUT"
    cp "$WORK/results.jsonl" "${OUT%.md}.jsonl"
    log "wrote $OUT and ${OUT%.md}.jsonl"
fi
