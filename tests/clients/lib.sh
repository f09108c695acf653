# shellcheck shell=bash disable=SC2034
# Shared by the client scripts in this folder; sourced, not run.
#
# Every script reads the same environment:
#   S3GATE_ENDPOINT        http://127.0.0.1:PORT or https://localhost:PORT (required)
#   AWS_ACCESS_KEY_ID      client credentials s3gate issued (required)
#   AWS_SECRET_ACCESS_KEY
#   S3GATE_TEST_BUCKET     a bucket name the script creates (required)
#   S3GATE_CA_BUNDLE       PEM file of the CA that signed the gateway's certificate (HTTPS only)
#   S3GATE_KNOWN_FILE      a file the script uploads as kept/known.bin and leaves in the bucket,
#                          so the caller can check what the store holds (made up if unset)
# A script exits 0 only when every step passed, and otherwise says which step failed.

set -Eeuo pipefail

CLIENT_NAME="$(basename "$0")"
CURRENT_STEP="start"
CLIENTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CLIENTS_DIR/../.." && pwd)"

# The venv that scripts/install-test-deps.sh makes holds awscli, boto3 and requests.
if [ -d "$REPO_ROOT/.venv/bin" ]; then
    PATH="$REPO_ROOT/.venv/bin:$PATH"
fi

step() {
    CURRENT_STEP="$*"
    echo "== $CLIENT_NAME: $*"
}

fail() {
    echo "$CLIENT_NAME: FAILED at step '$CURRENT_STEP': $*" >&2
    exit 1
}

on_error() {
    local rc=$? line=$1 cmd=$2
    echo "$CLIENT_NAME: FAILED at step '$CURRENT_STEP' (line $line, exit $rc): $cmd" >&2
    exit "$rc"
}
trap 'on_error "$LINENO" "$BASH_COMMAND"' ERR

need_env() {
    local v
    for v in "$@"; do
        [ -n "${!v:-}" ] || fail "environment variable $v is not set"
    done
}

need_tool() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || fail "$t not found: run scripts/install-test-deps.sh"
    done
}

need_env S3GATE_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY S3GATE_TEST_BUCKET
BUCKET="$S3GATE_TEST_BUCKET"
CA_BUNDLE="${S3GATE_CA_BUNDLE:-}"
if [ -n "$CA_BUNDLE" ] && [ ! -r "$CA_BUNDLE" ]; then
    fail "S3GATE_CA_BUNDLE=$CA_BUNDLE is not a readable file"
fi
case "$S3GATE_ENDPOINT" in
    https://*) SCHEME=https ;;
    http://*) SCHEME=http ;;
    *) fail "S3GATE_ENDPOINT must start with http:// or https://, got $S3GATE_ENDPOINT" ;;
esac
# host:port, for tools that take it apart from the scheme.
ENDPOINT_HOSTPORT="${S3GATE_ENDPOINT#*://}"
ENDPOINT_HOSTPORT="${ENDPOINT_HOSTPORT%%/*}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/s3gate-client.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# A 20 MiB random file: over every client's multipart threshold.
make_big_file() {
    head -c $((20 * 1024 * 1024)) /dev/urandom >"$1"
}

# The file left as kept/known.bin: the caller's, or 12 MiB + 5 bytes made up here.
known_file() {
    if [ -n "${S3GATE_KNOWN_FILE:-}" ]; then
        [ -r "$S3GATE_KNOWN_FILE" ] || fail "S3GATE_KNOWN_FILE=$S3GATE_KNOWN_FILE is not readable"
        echo "$S3GATE_KNOWN_FILE"
    else
        head -c $((12 * 1024 * 1024 + 5)) /dev/urandom >"$WORK/known.bin"
        echo "$WORK/known.bin"
    fi
}

# A folder to sync: nested folders, a name with spaces, an empty file, a few sizes.
make_tree() {
    local d=$1
    mkdir -p "$d/nested/deeper" "$d/with space"
    echo "top level" >"$d/a.txt"
    printf 'spaces in the name\n' >"$d/name with spaces.txt"
    : >"$d/empty.txt"
    head -c 100000 /dev/urandom >"$d/nested/b.bin"
    head -c 1234567 /dev/urandom >"$d/nested/deeper/c.bin"
    echo "inside a folder with a space" >"$d/with space/d.txt"
    # Older than any upload, so a sync that compares times with the store's (whole-second)
    # LastModified never sees the local copy as newer.
    find "$d" -type f -exec touch -d '-1 hour' {} +
}

# The keys make_tree makes, relative to the folder, sorted.
TREE_KEYS=(
    "a.txt"
    "empty.txt"
    "name with spaces.txt"
    "nested/b.bin"
    "nested/deeper/c.bin"
    "with space/d.txt"
)

# Compares two folders file by file.
same_tree() {
    diff -r "$1" "$2" >/dev/null || fail "folders differ: $(diff -rq "$1" "$2" | head -n 5)"
}

# Asserts that the lines of $1 (sorted) equal the remaining arguments (sorted).
same_lines() {
    local got=$1
    shift
    local want
    want="$(printf '%s\n' "$@" | LC_ALL=C sort)"
    got="$(printf '%s\n' "$got" | sed '/^$/d' | LC_ALL=C sort)"
    [ "$got" = "$want" ] || fail "expected:
$want
got:
$got"
}
