# Finding (or installing) Redis for the scripts of this project; sourced by scripts/test.sh
# and scripts/demo.sh, not run on its own.
#
# Set SCRIPT to the calling script's path (for messages) before sourcing. Defines:
#   die MESSAGE          print "SCRIPT: MESSAGE" to stderr and exit 1
#   find_redis           REDIS_SERVER=/path/to/redis-server (or valkey-server) if set, else
#                        redis-server on PATH;
#                        if missing, installs redis-server and redis-sentinel with apt-get when
#                        running as root, otherwise prints the command to run and fails.
#                        Exports REDIS_SERVER (the harness uses it).
#   find_openssl         the `openssl` tool (the harness's TLS mode makes a throwaway CA with
#                        it); installed with apt-get when missing and root, else fails with the
#                        command to run
#   check_redis_version  fails unless REDIS_SERVER is Redis ${MIN_REDIS_MAJOR}.0 or newer, or a
#                        Valkey (every Valkey release is 7.2 or newer)
#   our_redis_pids       pids of Redis/Valkey processes whose command line contains "$RUN_DIR/"
#                        (the harness puts each process's config in a directory under TMPDIR)

MIN_REDIS_MAJOR=7
INSTALL_COMMAND="sudo apt-get update && sudo apt-get install -y redis-server redis-sentinel"

die() {
    echo "${SCRIPT:-$0}: $*" >&2
    exit 1
}

install_redis() {
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        die "redis-server not found. Install Redis ${MIN_REDIS_MAJOR}.0 or newer, on Debian/Ubuntu with:
    ${INSTALL_COMMAND}
or point REDIS_SERVER at a redis-server (or valkey-server) binary:
    REDIS_SERVER=/path/to/redis-server bash ${SCRIPT:-$0}"
    fi
    echo "==> installing redis-server and redis-sentinel with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Do not let the packages start system-wide Redis services: the harness starts its own.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
    fi
    local status=0
    if ! apt-get install -y -q redis-server redis-sentinel; then
        apt-get update -q && apt-get install -y -q redis-server redis-sentinel || status=$?
    fi
    if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi
    [[ $status -eq 0 ]] || die "apt-get install redis-server redis-sentinel failed"
}

find_redis() {
    if [[ -n ${REDIS_SERVER:-} ]]; then
        [[ -x $REDIS_SERVER && -f $REDIS_SERVER ]] ||
            die "REDIS_SERVER=$REDIS_SERVER is not an executable file"
        return
    fi
    if ! command -v redis-server >/dev/null; then
        install_redis
    fi
    command -v redis-server >/dev/null || die "redis-server is still not on PATH after installing"
    REDIS_SERVER=$(command -v redis-server)
    export REDIS_SERVER
}

find_openssl() {
    command -v openssl >/dev/null && return
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        die "openssl not found (the TLS tests make a throwaway CA with it). On Debian/Ubuntu:
    sudo apt-get install -y openssl"
    fi
    echo "==> installing openssl with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q openssl || { apt-get update -q && apt-get install -y -q openssl; } ||
        die "apt-get install openssl failed"
}

check_redis_version() {
    local banner server version
    banner=$("$REDIS_SERVER" --version) || die "$REDIS_SERVER --version failed"
    case $banner in
    "Redis server "*) server=Redis ;;
    "Valkey server "*) server=Valkey ;;
    *) die "$REDIS_SERVER is neither a Redis nor a Valkey server: $banner" ;;
    esac
    version=$(sed -n 's/.* v=\([0-9.]*\).*/\1/p' <<<"$banner")
    [[ -n $version ]] || die "$REDIS_SERVER --version did not print a version"
    if ((${version%%.*} < MIN_REDIS_MAJOR)); then
        die "$REDIS_SERVER is $server $version; ${MIN_REDIS_MAJOR}.0 or newer is needed \
(Debian 12, Ubuntu 24.04, or https://redis.io/docs/latest/operate/oss_and_stack/install/)"
    fi
    echo "==> using $REDIS_SERVER ($server $version)"
}

our_redis_pids() {
    pgrep -f -- "$RUN_DIR/" || true
}
