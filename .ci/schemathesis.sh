#!/usr/bin/env bash
# schemathesis (from PyPI, pinned) against the OpenAPI document of the example server: every
# generated request must get a status the document lists, with a body that matches its
# schema, and never a 5xx. Exits non-zero on any failure, after a summary.
#
# The server runs on 127.0.0.1 with its own token and a fresh SQLite file; schemathesis lives
# in a virtualenv under the target directory. Settings: .ci/schemathesis.toml. Set
# SCHEMATHESIS_SEED to replay a run whose seed a failure printed, SCHEMATHESIS_EXAMPLES for
# more (or fewer) cases per operation, FLOW_SERVER_BIN to use a server binary built already.
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
examples="${SCHEMATHESIS_EXAMPLES:-100}"
target="${CARGO_TARGET_DIR:-target}"
target="$(mkdir -p "$target" && cd "$target" && pwd)"
venv="$target/schemathesis-venv"
work="$target/schemathesis"
config="$PWD/.ci/schemathesis.toml"

if [ "$("$venv/bin/schemathesis" --version 2>/dev/null | grep -o '[0-9][0-9.]*$')" != "$version" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

# The tests' features, as .ci/run builds the examples: then this build is done already.
if [ -z "${FLOW_SERVER_BIN:-}" ]; then
    cargo build --workspace --features postgres --examples
    FLOW_SERVER_BIN="$target/debug/examples/server"
fi

rm -rf "$work"
mkdir -p "$work"
FLOW_SERVER_DB="$work/runs.db" "$FLOW_SERVER_BIN" </dev/null >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT

# The example prints its address and a fresh token once it listens.
base=""
token=""
for _ in $(seq 300); do
    base="$(sed -n 's|^serving on \(http://127\.0\.0\.1:[0-9]*\)$|\1|p' "$work/server.log")"
    token="$(sed -n 's|^token: \([0-9a-f]*\)$|\1|p' "$work/server.log")"
    [ -n "$base" ] && [ -n "$token" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$base" ] || [ -z "$token" ]; then
    echo "schemathesis: the example server did not start; its output:" >&2
    cat "$work/server.log" >&2
    exit 1
fi

seed=()
[ -n "${SCHEMATHESIS_SEED:-}" ] && seed=(--seed "$SCHEMATHESIS_SEED")
status=0
(cd "$work" && timeout 240 "$venv/bin/schemathesis" --no-color --config-file "$config" \
    run "$base/openapi.json" \
    --header "Authorization: Bearer $token" \
    --max-examples "$examples" "${seed[@]}" \
    --request-timeout 10 \
    --report junit --report-dir "$work/report" \
    </dev/null) || status=$?

if ! kill -0 "$server" 2>/dev/null; then
    echo "schemathesis: FAILED, the server exited during the run; its output:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "schemathesis: FAILED (exit $status): the failures are above, each with a curl line" >&2
    echo "to reproduce it; rerun with SCHEMATHESIS_SEED=<the seed above> to replay them." >&2
    echo "The server's log is $work/server.log." >&2
    exit 1
fi
echo "schemathesis: passed, $examples cases at most per operation, no failures"
