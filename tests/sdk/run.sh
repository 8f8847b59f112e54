#!/usr/bin/env bash
# Runs the official Azure Communication Services SDKs (Python and JavaScript) against one confab
# server and reports the combined result.
#
#   tests/sdk/run.sh [PATH_TO_CONFAB_BINARY]      (default: target/debug/confab in the repo root)
#
# Needs python3 (3.11), node 20 and npm. Creates tests/sdk/python/.venv and tests/sdk/js/node_modules
# on first use (and again when requirements.txt / package-lock.json change). Starts
# `confab serve --in-memory` over HTTPS on a free port, trusts its self-signed certificate
# (REQUESTS_CA_BUNDLE / SSL_CERT_FILE for Python, NODE_EXTRA_CA_CERTS for Node), runs
# python/test_sdk.py and then `node --test js/test.mjs`, stops the server, and ends with the line
#   N passed, M failed
# counting test cases of both suites (a suite that crashes before reporting counts as one failure).
# Exit status: 0 only if both suites passed.
#
# Environment knobs: CONFAB_SDK_SUITES="python js" (which suites to run),
# CONFAB_SDK_START_TIMEOUT=60 (seconds to wait for the server), CONFAB_SDK_SUITE_TIMEOUT=900.
set -euo pipefail

SDK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SDK_DIR/../.." && pwd)"
PY_DIR="$SDK_DIR/python"
JS_DIR="$SDK_DIR/js"
VENV="$PY_DIR/.venv"

BIN="${1:-$ROOT/target/debug/confab}"
case "$BIN" in
  /*) ;;
  *) BIN="$PWD/$BIN" ;;
esac
SUITES="${CONFAB_SDK_SUITES:-python js}"
START_TIMEOUT="${CONFAB_SDK_START_TIMEOUT:-60}"
SUITE_TIMEOUT="${CONFAB_SDK_SUITE_TIMEOUT:-900}"

log() { printf '[sdk] %s\n' "$*"; }
die() {
  printf '[sdk] error: %s\n' "$*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

if [[ ! -x "$BIN" ]]; then
  die "confab binary not found or not executable: $BIN (build it with: cargo build -p confab)"
fi
command -v python3 >/dev/null || die "python3 not found"
if [[ " $SUITES " == *" js "* ]]; then
  command -v node >/dev/null || die "node not found"
  command -v npm >/dev/null || die "npm not found"
fi

sha() { python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }

# ---------------------------------------------------------------------------- dependencies
setup_python() {
  local stamp="$VENV/.requirements.sha256" want
  want="$(sha "$PY_DIR/requirements.txt")"
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
  fi
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    log "installing python requirements"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      -r "$PY_DIR/requirements.txt" </dev/null || die "pip install failed"
    echo "$want" >"$stamp"
  fi
}

setup_js() {
  local stamp="$JS_DIR/node_modules/.package-lock.sha256" want
  want="$(sha "$JS_DIR/package-lock.json")"
  if [[ ! -d "$JS_DIR/node_modules" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    log "npm ci in $JS_DIR"
    (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error </dev/null) || die "npm ci failed"
    echo "$want" >"$stamp"
  fi
}

[[ " $SUITES " == *" python "* ]] && setup_python
[[ " $SUITES " == *" js "* ]] && setup_js

# ---------------------------------------------------------------------------- server
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/confab-sdk.XXXXXX")"
DATA_DIR="$RUN_DIR/data"
mkdir -p "$DATA_DIR"
SERVER_OUT="$RUN_DIR/server.stdout"
SERVER_ERR="$RUN_DIR/server.stderr"
SERVER_PID=""

stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server did not stop on TERM; killing it"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

cleanup() {
  stop_server
  if [[ -n "${KEEP_RUN_DIR:-}" ]]; then
    log "kept $RUN_DIR"
  else
    rm -rf "$RUN_DIR"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_server_log() {
  log "---- server stdout (last 40 lines) ----"
  tail -n 40 "$SERVER_OUT" 2>/dev/null | sed 's/^/  /' || true
  log "---- server stderr (last 60 lines) ----"
  tail -n 60 "$SERVER_ERR" 2>/dev/null | sed 's/^/  /' || true
}

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
log "starting $BIN serve --in-memory --port $PORT"
"$BIN" serve --in-memory --port "$PORT" --host 127.0.0.1 --data-dir "$DATA_DIR" \
  </dev/null >"$SERVER_OUT" 2>"$SERVER_ERR" &
SERVER_PID=$!

# Reads "connection string:" and "certificate:" from the server's stdout, tolerant of spacing.
# The certificate line may carry a trailing "(trust it: ...)" remark.
parse_field() {
  python3 - "$SERVER_OUT" "$1" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
field = sys.argv[2]
if field == "conn":
    m = re.search(r"(?im)^\s*connection\s+string\s*:\s*(\S+)\s*$", text)
elif field == "cert":
    m = re.search(r"(?im)^\s*certificate\s*:\s*(.+?)(?:\s+\(.*\))?\s*$", text)
else:
    m = re.search(r"(?im)^\s*endpoint\s*:\s*(\S+)\s*$", text)
print(m.group(1) if m else "")
EOF
}

CONN=""
CERT=""
deadline=$((SECONDS + START_TIMEOUT))
while :; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    wait "$SERVER_PID" 2>/dev/null && rc=0 || rc=$?
    SERVER_PID=""
    show_server_log
    die "confab exited during startup (status $rc)"
  fi
  CONN="$(parse_field conn)"
  CERT="$(parse_field cert)"
  [[ -n "$CONN" && -n "$CERT" ]] && break
  if ((SECONDS >= deadline)); then
    show_server_log
    die "confab did not print its connection string and certificate within ${START_TIMEOUT}s"
  fi
  sleep 0.2
done
[[ -f "$CERT" ]] || { show_server_log; die "certificate file not found: $CERT"; }
ENDPOINT="$(parse_field endpoint)"
if [[ -z "$ENDPOINT" ]]; then
  ENDPOINT="$(sed -n 's/.*[Ee]ndpoint=\([^;]*\).*/\1/p' <<<"$CONN")"
fi
log "server up: endpoint $ENDPOINT, certificate $CERT"

export CONFAB_CONNECTION_STRING="$CONN"
export CONFAB_ENDPOINT="$ENDPOINT"

# ---------------------------------------------------------------------------- suites
PASSED=0
FAILED=0
STATUS=0
SUMMARY=()

add_counts() { # name passed failed rc
  PASSED=$((PASSED + $2))
  FAILED=$((FAILED + $3))
  SUMMARY+=("$1: $2 passed, $3 failed (exit $4)")
  if [[ "$4" != 0 || "$3" != 0 ]]; then STATUS=1; fi
}

run_python() {
  local results="$RUN_DIR/python.json" rc=0 p f
  log "==== Python SDK (azure-communication-chat / -identity) ===="
  (
    cd "$PY_DIR"
    REQUESTS_CA_BUNDLE="$CERT" SSL_CERT_FILE="$CERT" CONFAB_SDK_RESULTS="$results" \
      PYTHONUNBUFFERED=1 timeout "$SUITE_TIMEOUT" "$VENV/bin/python" test_sdk.py </dev/null
  ) || rc=$?
  if [[ -f "$results" ]]; then
    read -r p f < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["passed"], d["failed"])' "$results")
  else
    p=0 f=1
    log "python suite produced no results (exit $rc)"
  fi
  if [[ "$rc" != 0 && "$f" == 0 ]]; then f=1; fi
  add_counts python "$p" "$f" "$rc"
}

run_js() {
  local tap="$RUN_DIR/js.tap" rc=0 p f c
  log "==== JavaScript SDK (@azure/communication-chat / -identity) ===="
  (
    cd "$JS_DIR"
    NODE_EXTRA_CA_CERTS="$CERT" timeout "$SUITE_TIMEOUT" node --test \
      --test-reporter=spec --test-reporter-destination=stdout \
      --test-reporter=tap --test-reporter-destination="$tap" \
      test.mjs </dev/null
  ) || rc=$?
  p="$(sed -n 's/^# pass \([0-9]\+\)$/\1/p' "$tap" 2>/dev/null | tail -n1)"
  f="$(sed -n 's/^# fail \([0-9]\+\)$/\1/p' "$tap" 2>/dev/null | tail -n1)"
  c="$(sed -n 's/^# cancelled \([0-9]\+\)$/\1/p' "$tap" 2>/dev/null | tail -n1)"
  if [[ -z "$p" || -z "$f" ]]; then
    p=0 f=1
    log "js suite produced no summary (exit $rc)"
  else
    f=$((f + ${c:-0}))
  fi
  if [[ "$rc" != 0 && "$f" == 0 ]]; then f=1; fi
  add_counts js "$p" "$f" "$rc"
}

for suite in $SUITES; do
  case "$suite" in
    python) run_python ;;
    js) run_js ;;
    *) die "unknown suite: $suite" ;;
  esac
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "confab is no longer running after the $suite suite"
    STATUS=1
    FAILED=$((FAILED + 1))
    SUMMARY+=("server: died during the $suite suite")
    SERVER_PID=""
    break
  fi
done

if [[ "$STATUS" != 0 ]]; then
  show_server_log
fi
stop_server

log "==== summary ===="
for line in "${SUMMARY[@]}"; do log "$line"; done
echo "$PASSED passed, $FAILED failed"
exit "$STATUS"
