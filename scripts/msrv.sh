#!/usr/bin/env bash
# Minimum supported Rust version check: builds (`cargo check`, library targets) every published
# crate with the toolchain its Cargo.toml names in `rust-version`, installing that toolchain
# with rustup (profile minimal) when it is missing. Crates are grouped by MSRV: today 1.88 for
# all but dramatiq-sentinel-apalis (1.89: apalis-core 1.0 requires uuid >= 1.28, which needs
# 1.89). The build uses the committed Cargo.lock (`--locked`): a lock entry that needs a newer
# Rust than a crate's MSRV fails here; raise the MSRV or pin the dependency
# (`cargo update -p NAME --precise VERSION`), and say which in the commit.
#
# Usage: bash scripts/msrv.sh
# Builds into $CARGO_TARGET_DIR/msrv (default target/msrv), apart from the stable builds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Each published crate: directory and the features its check enables (as a user would: a TLS
# backend for the shims, a runtime for the integrations, the simulator for the core). The
# supervisor needs a runtime feature of `redis`, which the shims built alongside enable.
crates=(
    "core:sim"
    "supervisor:"
    "runtime-tokio:tls-rustls"
    "runtime-smol:tls-rustls"
    "integrations/deadpool:tokio,smol"
    "integrations/apalis:tokio,smol"
    "harness:"
    "cli:"
)

field() { # field FILE KEY: the string value of `KEY = "..."` in FILE, if any
    sed -n "s/^$2[[:space:]]*=[[:space:]]*\"\\([^\"]*\\)\".*/\\1/p" "$1" | head -n 1
}
workspace_msrv=$(field Cargo.toml rust-version)

declare -A groups=() # msrv -> cargo arguments
for entry in "${crates[@]}"; do
    dir=${entry%%:*} features=${entry#*:}
    name=$(field "$dir/Cargo.toml" name)
    msrv=$(field "$dir/Cargo.toml" rust-version)
    if [[ -z $msrv ]] && grep -q '^rust-version.workspace[[:space:]]*=[[:space:]]*true' "$dir/Cargo.toml"; then
        msrv=$workspace_msrv
    fi
    [[ -n $name && -n $msrv ]] || { echo "msrv: no package name or rust-version in $dir/Cargo.toml" >&2; exit 1; }
    args="-p $name"
    [[ -n $features ]] && args+=" --features $name/${features//,/,$name/}"
    groups[$msrv]="${groups[$msrv]:-} $args"
done

if ! command -v rustup >/dev/null; then
    echo "msrv: rustup is needed to install the MSRV toolchains (${!groups[*]})" >&2
    exit 1
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/msrv"
status=0
for msrv in $(printf '%s\n' "${!groups[@]}" | sort -V); do
    if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
        echo "==> rustup toolchain install $msrv --profile minimal"
        rustup toolchain install "$msrv" --profile minimal
    fi
    # shellcheck disable=SC2086 # the arguments are split on purpose
    echo "==> cargo +$msrv check --locked${groups[$msrv]}"
    # shellcheck disable=SC2086
    if ! cargo "+$msrv" check --locked ${groups[$msrv]}; then
        echo "msrv: FAILED on Rust $msrv:${groups[$msrv]}" >&2
        status=1
    fi
done
[[ $status == 0 ]] && echo "msrv: every published crate builds with its rust-version (${!groups[*]})"
exit $status
