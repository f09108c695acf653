#!/usr/bin/env bash
# bench/run.sh: compare s3gate with nginx and with the bare store on this machine, and print a
# markdown table (see docs/benchmarks.md).
#
#   bench/run.sh [--quick] [--rounds N] [--out FILE]
#
# It builds the release binaries, starts `s3gate store` on a temp data folder, nginx (plain
# proxy_pass) and `s3gate serve` in front of it, all on 127.0.0.1, runs s3gate-bench against each,
# and stops everything it started on exit. Targets that are missed are reported, not fatal.
# The targets take turns, N rounds (default 3), and the median round is reported: a burst of
# other work on the machine then spoils one round, not the result.
# `--quick` is a smoke run (one round, short durations, 32 MiB objects in the memory test).
# KEEP=1 keeps the temp folder (logs, raw JSON) for inspection; DATA=DIR puts the store's objects
# there instead of a tmpfs folder under /dev/shm.

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
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    SMALL_SECS=3; LARGE_SECS=4; MEM_SIZE=32MiB; ROUNDS=${ROUNDS:-1}
else
    SMALL_SECS=10; LARGE_SECS=15; MEM_SIZE=256MiB; ROUNDS=${ROUNDS:-3}
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
NGINX=$(command -v nginx)

LOAD=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$LOAD" 'BEGIN { exit !(l > 0.5) }' && log "warning: load average $LOAD: other work will skew the numbers"
log "building release binaries"
(cd "$ROOT" && cargo build --release --bins >&2)
BIN="$ROOT/target/release"

# --- processes and cleanup ---------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/s3gate-bench.XXXXXX")
# The store keeps objects in RAM (tmpfs) when there is room: the run measures proxies, and disk
# writeback would take CPU from them on a small machine. DATA=DIR overrides.
if [ -n "${DATA:-}" ]; then
    DATA_DIR=$DATA
elif [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -gt $((8 * 1024 * 1024)) ] 2>/dev/null; then
    DATA_DIR=$(mktemp -d /dev/shm/s3gate-bench-data.XXXXXX)
else
    DATA_DIR="$WORK/data"
fi
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [ -n "${DATA:-}" ] || rm -rf "$DATA_DIR"
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
STORE_PORT=$(free_port); NGINX_PORT=$(free_port); GATE_PORT=$(free_port)

"$BIN/s3gate" store --listen "127.0.0.1:$STORE_PORT" --data "$DATA_DIR" \
    --credentials "$STORE_AK:$STORE_SK" >"$WORK/store.log" 2>&1 &
STORE_PID=$!; PIDS+=("$STORE_PID")
wait_port "$STORE_PORT" "$STORE_PID" store

NG="$WORK/nginx"
mkdir -p "$NG"
sed -e "s|@PREFIX@|$NG|g" -e "s|@LISTEN@|127.0.0.1:$NGINX_PORT|g" \
    -e "s|@UPSTREAM@|127.0.0.1:$STORE_PORT|g" "$ROOT/bench/nginx.conf.template" >"$NG/nginx.conf"
"$NGINX" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" >"$WORK/nginx.log" 2>&1 &
NGINX_PID=$!; PIDS+=("$NGINX_PID")
wait_port "$NGINX_PORT" "$NGINX_PID" nginx

"$BIN/s3gate" serve --listen "127.0.0.1:$GATE_PORT" --upstream "http://127.0.0.1:$STORE_PORT" \
    --upstream-credentials "$STORE_AK:$STORE_SK" --credentials "$CLIENT_AK:$CLIENT_SK" \
    --region "$REGION" --shutdown-grace 1 >"$WORK/s3gate.log" 2>&1 &
GATE_PID=$!; PIDS+=("$GATE_PID")
wait_port "$GATE_PORT" "$GATE_PID" s3gate

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

nginx_pids() { echo "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true); }

proxy_pids() { # target
    case "$1" in
        store) ;;
        nginx) nginx_pids ;;
        s3gate) echo "$GATE_PID" ;;
    esac
}

endpoint_of() {
    case "$1" in
        store) echo "http://127.0.0.1:$STORE_PORT" ;;
        nginx) echo "http://127.0.0.1:$NGINX_PORT" ;;
        s3gate) echo "http://127.0.0.1:$GATE_PORT" ;;
    esac
}

SEQ=0
ROUND=0
# Runs s3gate-bench against a target; appends one JSON line (the bench's report plus the CPU share
# of a core used by the proxy, the store and the bench itself) to $WORK/results.jsonl.
bench() { # scenario target bench-args...
    local scenario=$1 target=$2; shift 2
    local ak=$CLIENT_AK sk=$CLIENT_SK
    if [ "$target" != s3gate ]; then ak=$STORE_AK; sk=$STORE_SK; fi
    local proxy; proxy=$(proxy_pids "$target")
    local p0 s0 m0 i0 t0 t1 p1 s1 m1 i1 out times rc=0
    p0=$(cpu_ticks $proxy); s0=$(cpu_ticks "$STORE_PID"); m0=$(machine_ticks); i0=$(irq_ticks)
    t0=$(date +%s.%N)
    log "$scenario -> $target"
    times="$WORK/time.$$"
    out=$( { TIMEFORMAT='%U %S'; time timeout 600 "$BIN/s3gate-bench" --endpoint "$(endpoint_of "$target")" \
        --access-key "$ak" --secret-key "$sk" --region "$REGION" --bucket "$BUCKET" --json "$@" \
        2>>"$WORK/bench.log"; } 2>"$times" ) || rc=$?
    t1=$(date +%s.%N)
    # shellcheck disable=SC2086
    p1=$(cpu_ticks $proxy); s1=$(cpu_ticks "$STORE_PID"); m1=$(machine_ticks); i1=$(irq_ticks)
    [ -n "$out" ] || out='{"total":{"ok":0,"errors":1,"first_error":"bench failed, see bench.log"}}'
    [ "$rc" = 0 ] || [ "$rc" = 1 ] || log "s3gate-bench exited with $rc"
    SEQ=$((SEQ + 1))
    jq -c --arg scenario "$scenario" --arg target "$target" --argjson seq "$SEQ" --argjson round "$ROUND" \
        --argjson wall "$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')" --argjson tck "$CLK_TCK" \
        --argjson proxy "$((p1 - p0))" --argjson store "$((s1 - s0))" --argjson machine "$((m1 - m0))" \
        --argjson irq "$((i1 - i0))" \
        --arg btimes "$(tail -n 1 "$times")" \
        '. + {scenario: $scenario, target: $target, seq: $seq, round: $round,
              cpu_proxy: (if $target == "store" then null else $proxy / $tck / $wall end),
              cpu_store: ($store / $tck / $wall),
              cpu_bench: (($btimes | split(" ") | map(tonumber) | add) / $wall)}
         | . + {cpu_irq: ($irq / $tck / $wall), cpu_other: ([($machine / $tck / $wall) - (.cpu_proxy // 0) - .cpu_store - .cpu_bench, 0] | max)}' \
        <<<"$out" >>"$WORK/results.jsonl"
}

# Samples s3gate's VmRSS every 100 ms into a file until killed.
sample_rss() {
    while kill -0 "$GATE_PID" 2>/dev/null; do
        awk '/^VmRSS:/ { print $2 }' "/proc/$GATE_PID/status" 2>/dev/null || true
        sleep 0.1
    done
}

for ROUND in $(seq "$ROUNDS"); do
    log "round $ROUND of $ROUNDS"
    for target in store nginx s3gate; do
        bench "4 KiB GET" "$target" --op get --size 4KiB --keys 64 --concurrency 16 --duration "$SMALL_SECS"
    done
    for target in store nginx s3gate; do
        bench "64 MiB GET" "$target" --op get --size 64MiB --keys 4 --concurrency 4 --duration "$LARGE_SECS"
    done
    for target in store nginx s3gate; do
        bench "64 MiB PUT" "$target" --op put --size 64MiB --concurrency 4 --duration "$LARGE_SECS"
    done
done

# The memory test: a fresh peak (writing 5 to clear_refs resets VmHWM), then 16 clients each PUT
# and GET back a large object through s3gate while VmRSS is sampled.
echo 5 2>/dev/null >"/proc/$GATE_PID/clear_refs" || log "cannot reset VmHWM; it covers the whole run"
RSS_BEFORE=$(awk '/^VmRSS:/ { print $2 }' "/proc/$GATE_PID/status")
sample_rss >"$WORK/rss.txt" &
SAMPLER_PID=$!; PIDS+=("$SAMPLER_PID")
bench "memory: ${MEM_CLIENTS}x $MEM_SIZE PUT+GET" s3gate --op putget --size "$MEM_SIZE" \
    --concurrency "$MEM_CLIENTS" --requests "$MEM_CLIENTS" --timeout 300
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
RSS_PEAK=$(sort -n "$WORK/rss.txt" | tail -n 1)
RSS_SAMPLES=$(wc -l <"$WORK/rss.txt")
HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$GATE_PID/status")

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
metric() { # scenario target jq-path
    jq -r --arg s "$1" --arg t "$2" "select(.scenario == \$s and .target == \$t) | $3 // 0" "$R"
}
verdict() { awk -v r="$1" -v min="$2" 'BEGIN { print (r != "n/a" && r + 0 >= min) ? "pass" : "**FAIL**" }'; }
# The s3gate/nginx ratio of each round (the two ran back to back) and their median: steadier than
# the ratio of two medians that may come from different rounds.
round_ratios() { # scenario field
    jq -s -r --arg s "$1" --arg f "$2" '
        map(select(.scenario == $s)) | group_by(.round)
        | map((map(select(.target == "s3gate"))[0].total[$f] // 0) as $g
              | (map(select(.target == "nginx"))[0].total[$f] // 0) as $n
              | if $n > 0 then $g / $n else empty end)
        | if length == 0 then "n/a n/a"
          else (sort | .[(length - 1) / 2 | floor] * 100 | round / 100 | tostring)
               + " " + (map(. * 100 | round / 100 | tostring) | join(",")) end' "$WORK/results.jsonl"
}
check() { # scenario field minimum
    local s n r rounds unit=ops/s
    [ "$2" = ops_per_s ] || unit=MiB/s
    s=$(metric "$1" s3gate ".total.$2"); n=$(metric "$1" nginx ".total.$2")
    read -r r rounds <<<"$(round_ratios "$1" "$2")"
    echo "| $1 $unit | $s | $n | $r | ${rounds//,/, } | >= $3 | $(verdict "$r" "$3") |"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

report() {
    echo "Machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)," \
         "$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r);" \
         "store data on $(df -P "$DATA_DIR" | awk 'NR == 2 { print $1 }');" \
         "$("$NGINX" -v 2>&1 | sed 's|.*/||; s|^|nginx |')$([ "$QUICK" = 1 ] && echo '; quick run')."
    echo
    echo "| scenario | target | ops/s | MiB/s | range | p50 ms | p99 ms | max ms | errors | CPU proxy | CPU store | CPU bench | CPU softirq | CPU other |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    jq -r '[.scenario, .target, .total.ops_per_s, .total.mib_per_s, .range, .total.p50_ms, .total.p99_ms,
            .total.max_ms, .total.errors,
            (if .cpu_proxy == null then "-" else "\(.cpu_proxy * 100 | round)%" end),
            "\(.cpu_store * 100 | round)%", "\(.cpu_bench * 100 | round)%",
            "\(.cpu_irq * 100 | round)%", "\(.cpu_other * 100 | round)%"]
           | "| " + (map(tostring) | join(" | ")) + " |"' "$R"
    echo
    echo "Each line is the median of $ROUNDS round(s) by ops/s (4 KiB) or MiB/s (64 MiB); range is that figure's" \
         "lowest–highest over the rounds. Below, s3gate/nginx is the median of the per-round ratios."
    echo "CPU columns: share of one core over the bench run ($(nproc) cores = $(( $(nproc) * 100 ))%): user + system time of" \
         "the proxy, the store and the bench client; softirq (irq + softirq, mostly loopback TCP receive," \
         "charged to no process); other (all other processes and steal: should be near 0%)."
    echo
    echo "| check | s3gate | nginx | s3gate/nginx | per round | target | result |"
    echo "|---|---:|---:|---:|---:|---:|---|"
    check "4 KiB GET" ops_per_s 0.9
    check "64 MiB GET" mib_per_s 1.0
    check "64 MiB PUT" mib_per_s 1.0
    local peak_ok
    peak_ok=$(awk -v k="${RSS_PEAK:-0}" 'BEGIN { print (k > 0 && k < 64 * 1024) ? "pass" : "**FAIL**" }')
    echo "| s3gate peak VmRSS, ${MEM_CLIENTS}x $MEM_SIZE PUT+GET | $(mib "${RSS_PEAK:-0}") MiB | | | | < 64 MiB | $peak_ok |"
    echo
    echo "Memory test: VmRSS sampled every 100 ms ($RSS_SAMPLES samples): before $(mib "$RSS_BEFORE") MiB," \
         "peak $(mib "${RSS_PEAK:-0}") MiB; VmHWM after the test $(mib "${HWM:-0}") MiB."
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
