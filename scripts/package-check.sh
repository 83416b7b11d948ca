#!/usr/bin/env bash
# Are the published crates ready for crates.io? Runs, and fails on any problem:
#  1. `cargo publish --dry-run` of the six published crates in one command: cargo packages them
#     in dependency order (core, supervisor, the shims, the integrations) and verifies each
#     .crate by building it against the others' freshly packaged .crate files (a temporary
#     local registry, which is how dependents of crates not yet on crates.io can be verified;
#     cargo >= 1.90). The verify builds enable `redis/tokio-comp` (the supervisor alone enables
#     no `redis` runtime and does not build without one; the shims enable theirs) and the
#     integrations' `tokio` feature (they need one runtime). Needs crates.io's index.
#  2. each crate's packaged size (compressed .crate and unpacked) and file count, from the
#     .crate files of `cargo package --no-verify` (the same contents as the dry run's);
#  3. license files and README inside each .crate;
#  4. `cargo doc --no-deps` with RUSTDOCFLAGS=-D warnings for each crate alone, with the
#     features docs.rs builds it with (`[package.metadata.docs.rs]` of its Cargo.toml) and,
#     for the crates that build without features, with the default features too;
#  5. the MSRV check, scripts/msrv.sh (installs the MSRV toolchains with rustup if missing).
#
# Usage: bash scripts/package-check.sh
# Builds into $CARGO_TARGET_DIR (default target/). Uncommitted changes are packaged as they are
# (--allow-dirty), so the script can be run before a commit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS
target="${CARGO_TARGET_DIR:-$PWD/target}"

# dir:name, in dependency order; the last field says whether the crate builds without features.
crates=(
    "core:dramatiq-sentinel-core:plain"
    "supervisor:dramatiq-sentinel-supervisor:needs-features"
    "runtime-tokio:dramatiq-sentinel-tokio:plain"
    "runtime-smol:dramatiq-sentinel-smol:plain"
    "integrations/deadpool:dramatiq-sentinel-deadpool:needs-features"
    "integrations/apalis:dramatiq-sentinel-apalis:needs-features"
)
packages=()
for entry in "${crates[@]}"; do
    IFS=: read -r _ name _ <<<"$entry"
    packages+=(-p "$name")
done
failures=()
fail() { echo "package-check: FAILED: $*" >&2; failures+=("$*"); }

echo "==> cargo publish --dry-run ${packages[*]}"
rm -f "$target"/package/dramatiq-sentinel-*.crate
if ! cargo publish --dry-run --locked --allow-dirty "${packages[@]}" \
    --features redis/tokio-comp,dramatiq-sentinel-apalis/tokio,dramatiq-sentinel-deadpool/tokio; then
    fail "cargo publish --dry-run"
fi

# The dry run keeps its .crate files in a scratch folder of cargo's: package again, without the
# verify build, to have them where `cargo package` documents them (target/package).
echo "==> cargo package --no-verify ${packages[*]}"
cargo package --no-verify --locked --allow-dirty --quiet "${packages[@]}" || fail "cargo package --no-verify"
echo "==> packaged crates"
printf '%-30s %10s %10s %6s\n' crate ".crate" unpacked files
for entry in "${crates[@]}"; do
    IFS=: read -r dir name _ <<<"$entry"
    version=$(cargo pkgid --manifest-path "$dir/Cargo.toml" | sed 's/.*[@#]//')
    crate_file="$target/package/$name-$version.crate"
    if [[ ! -f $crate_file ]]; then
        fail "$name: no $crate_file"
        continue
    fi
    listing=$(tar tzvf "$crate_file")
    files=$(grep -c . <<<"$listing")
    unpacked=$(awk '{ s += $3 } END { print s }' <<<"$listing")
    awk -v n="$name" -v c="$(stat -c %s "$crate_file")" -v u="$unpacked" -v f="$files" \
        'BEGIN { printf "%-30s %8.1f K %8.1f K %6d\n", n, c / 1024, u / 1024, f }'
    for f in LICENSE-MIT LICENSE-APACHE README.md; do
        grep -q " $name-$version/$f\$" <<<"$listing" || fail "$name: $f not in the package"
    done
done

echo "==> cargo doc --no-deps, RUSTDOCFLAGS=-D warnings"
for entry in "${crates[@]}"; do
    IFS=: read -r dir name plain <<<"$entry"
    # features = [..] of [package.metadata.docs.rs], as a comma-separated list
    docs_features=$(sed -n '/^\[package.metadata.docs.rs\]/,/^\[/ s/^features[[:space:]]*=[[:space:]]*\[\(.*\)\]/\1/p' \
        "$dir/Cargo.toml" | tr -d ' "')
    echo "--> $name (docs.rs features: ${docs_features:-none})"
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet -p "$name" ${docs_features:+--features "$docs_features"} \
        || fail "cargo doc -p $name --features '$docs_features'"
    if [[ $plain == plain && -n $docs_features ]]; then
        echo "--> $name (default features)"
        RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet -p "$name" || fail "cargo doc -p $name"
    fi
done

echo "==> bash scripts/msrv.sh"
bash scripts/msrv.sh || fail "MSRV check (scripts/msrv.sh)"

duration=$((SECONDS - start))
if ((${#failures[@]})); then
    echo "package-check: ${#failures[@]} problem(s) in ${duration} s:" >&2
    printf '  %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "package-check: every published crate packages, documents and builds with its MSRV (${duration} s)"
