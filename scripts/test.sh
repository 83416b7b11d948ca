#!/usr/bin/env bash
# The test command of this project: `bash scripts/test.sh`.
#
# 1. Makes sure Redis (>= 7.0) is available: `REDIS_SERVER=/path/to/redis-server` if set, else
#    `redis-server` on PATH; if missing, installs `redis-server redis-sentinel` with apt-get when
#    running as root, otherwise prints the command to run and fails.
# 2. Runs the whole test suite (the steps in `run_tests` below). The real-Redis tests start
#    their own redis-server processes on 127.0.0.1; nothing else is needed.
# 3. Fails if any redis-server process started by the tests survived them.
#
# The deployment directories (with every Redis log) of this run live in one run directory,
# which is removed after a green run and kept (path printed) after a red one.
# DRAMATIQ_SENTINEL_KEEP_LOGS=1 keeps it in any case.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCRIPT=scripts/test.sh
# shellcheck source=scripts/redis-env.sh
source scripts/redis-env.sh

# The test steps. Add per-package runs here (features are unified in a workspace build, so
# each runtime shim is also tested on its own).
run_tests() {
    step cargo test --workspace --all-targets
    step cargo test --workspace --doc
    # Each runtime shim on its own: `redis` built with only that shim's runtime feature.
    step cargo test -p dramatiq-sentinel-smol
    step cargo test -p dramatiq-sentinel-tokio
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

check_leftovers() {
    local pids deadline=$((SECONDS + 10))
    # Children Redis forked (e.g. to stream a snapshot to a replica) end shortly after their
    # parent was killed; give them a moment.
    while pids=$(our_redis_pids) && [[ -n $pids ]] && ((SECONDS < deadline)); do
        sleep 0.5
    done
    if [[ -n $pids ]]; then
        echo "==> FAILED: redis-server processes started by the tests survived them:" >&2
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
