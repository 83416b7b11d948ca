#!/usr/bin/env bash
# The demo of this project: `bash scripts/demo.sh [drill options]`.
#
# 1. Makes sure Redis (>= 7.0) is available, exactly as scripts/test.sh does:
#    `REDIS_SERVER=/path/to/redis-server` if set, else `redis-server` on PATH; if missing,
#    installs `redis-server redis-sentinel` with apt-get when running as root, otherwise prints
#    the command to run and fails.
# 2. Runs the failover drill (`dramatiq-sentinel drill --local`, the operator command of the
#    cli/ crate) against a deployment it starts itself on 127.0.0.1 (one master,
#    two replicas, three sentinels): a worker pool and a producer on a reliable queue while
#    the master is failed over twice (SENTINEL FAILOVER) and then killed (SIGKILL). It prints
#    the supervisor's events as they happen and a summary: jobs produced, done, lost, run twice,
#    the longest pause and, per failover, the time from the first signal to resume.
#
# Options go to the drill, e.g. `--runtime smol`, `--story graceful,kill,freeze`, `--json`;
# `bash scripts/demo.sh --help` lists them. The exit status is the drill's (0: every job done
# exactly once). Redis logs are kept (path printed) when the drill does not end cleanly.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCRIPT=scripts/demo.sh
# shellcheck source=scripts/redis-env.sh
source scripts/redis-env.sh

command -v cargo >/dev/null || die "cargo not found; install Rust from https://rustup.rs"
find_redis
check_redis_version
if [[ " $* " == *" --tls "* ]]; then find_openssl; fi

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dramatiq-sentinel-demo.XXXXXX")
# The harness creates its deployment directory under TMPDIR. If the drill dies without
# cleaning up (SIGKILL), kill what is left of its Redis processes (found through RUN_DIR).
export TMPDIR=$RUN_DIR
trap 'our_redis_pids | xargs -r kill -9 2>/dev/null || true' EXIT

status=0
cargo run --release -p dramatiq-sentinel-cli --bin dramatiq-sentinel -- drill --local "$@" || status=$?

# The harness keeps a deployment's directory (with every Redis log) when the drill fails.
if [[ $status -ne 0 ]] && compgen -G "$RUN_DIR/dramatiq-sentinel-*" >/dev/null; then
    echo "==> the drill exited with status $status; Redis logs are in $RUN_DIR" >&2
else
    rm -rf "$RUN_DIR"
fi
exit "$status"
