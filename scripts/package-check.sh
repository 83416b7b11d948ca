#!/usr/bin/env bash
# Are the published crates ready for crates.io? Runs, and fails on any problem:
#  1. `cargo publish --dry-run` of the eight published crates in one command: cargo packages them
#     in dependency order (core, supervisor, the shims, the integrations, the harness, the
#     command line) and verifies each .crate by building it against the others' freshly
#     packaged .crate files (a temporary local registry, which is how dependents of crates not
#     yet on crates.io can be verified; cargo >= 1.90). The verify builds enable `redis/tokio-comp` (the supervisor alone enables
#     no `redis` runtime and does not build without one; the shims enable theirs) and the
#     integrations' `tokio` feature (they need one runtime). Needs crates.io's index.
#  2. each crate's packaged size (compressed .crate and unpacked) and file count, from the
#     .crate files of `cargo package --no-verify` (the same contents as the dry run's);
#  3. license files and README inside each .crate;
#  4. `cargo doc --no-deps` with RUSTDOCFLAGS=-D warnings, with the features docs.rs builds
#     each crate with (`[package.metadata.docs.rs]` of its Cargo.toml) and, for the crates
#     that build without features, with the default features too;
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
    "harness:dramatiq-sentinel-harness:plain"
    "cli:dramatiq-sentinel-cli:plain"
)
packages=()
for entry in "${crates[@]}"; do
    IFS=: read -r _ name _ <<<"$entry"
    packages+=(-p "$name")
done
failures=()
fail() { echo "package-check: FAILED: $*" >&2; failures+=("$*"); }
step() { echo "==> $* [$((SECONDS - start)) s]"; }

step "cargo publish --dry-run ${packages[*]}"
# Leftovers of an earlier run in the same target dir: its .crate files, and the temporary
# registry the dry run verifies against (a warm checkout verified against its stale copies).
rm -rf "$target"/package/dramatiq-sentinel-*.crate "$target"/package/tmp-registry
# Cargo unpacks the temporary registry's .crate files into $CARGO_HOME/registry/src/<hash of the
# registry's path>/ and reuses an unpacked copy it finds there: a clone at the same path as an
# earlier run (CI's) would verify against that run's stale sources. Our crates are not on
# crates.io, so every unpacked copy of them under registry/src is such a leftover.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rm -rf "$cargo_home"/registry/src/*/dramatiq-sentinel-* "$cargo_home"/registry/cache/*/dramatiq-sentinel-*
if ! cargo publish --dry-run --locked --allow-dirty "${packages[@]}" \
    --features redis/tokio-comp,dramatiq-sentinel-apalis/tokio,dramatiq-sentinel-deadpool/tokio; then
    fail "cargo publish --dry-run"
fi

# The dry run keeps its .crate files in a scratch folder of cargo's: package again, without the
# verify build, to have them where `cargo package` documents them (target/package).
step "cargo package --no-verify ${packages[*]}"
cargo package --no-verify --locked --allow-dirty --quiet "${packages[@]}" || fail "cargo package --no-verify"
step "packaged crates"
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

# docs.rs builds each crate alone with the features of its `[package.metadata.docs.rs]`. Here
# one build takes the union of those lists: for each of our crates that is its own list (the
# supervisor's `redis/tokio-rustls-comp` comes from the tokio shim's `tls-rustls`), and one
# build compiles the dependencies once. A second build, with default features, catches links
# to items that only exist with a feature, in the crates that build without one. A crate whose
# list enables a dependency's feature (the supervisor) is also documented alone with its list,
# as docs.rs will, so that a list that does not build is caught here.
docs_features=() alone=()
for entry in "${crates[@]}"; do
    IFS=: read -r dir name _ <<<"$entry"
    # features = [..] of [package.metadata.docs.rs], as a comma-separated list
    list=$(sed -n '/^\[package.metadata.docs.rs\]/,/^\[/ s/^features[[:space:]]*=[[:space:]]*\[\(.*\)\]/\1/p' \
        "$dir/Cargo.toml" | tr -d ' "')
    for feature in ${list//,/ }; do
        # a feature of a dependency (`redis/x`) is enabled through the crates that enable it
        [[ $feature == */* ]] || docs_features+=("$name/$feature")
    done
    # a crate whose list names a dependency's feature is documented alone too, as docs.rs does
    [[ $list == */* ]] && alone+=("$name:$list")
done
joined=$(IFS=,; echo "${docs_features[*]}")
step "cargo doc --no-deps ${packages[*]} --features $joined, RUSTDOCFLAGS=-D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet "${packages[@]}" --features "$joined" \
    || fail "cargo doc with the docs.rs features"
plain=()
for entry in "${crates[@]}"; do
    IFS=: read -r _ name kind <<<"$entry"
    [[ $kind == plain ]] && plain+=(-p "$name")
done
step "cargo doc --no-deps ${plain[*]} (default features), RUSTDOCFLAGS=-D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet "${plain[@]}" \
    || fail "cargo doc with default features"
for entry in "${alone[@]}"; do
    name=${entry%%:*} list=${entry#*:}
    step "cargo doc --no-deps -p $name --features $list, RUSTDOCFLAGS=-D warnings"
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet -p "$name" --features "$list" \
        || fail "cargo doc -p $name --features $list"
done

step "bash scripts/msrv.sh"
bash scripts/msrv.sh || fail "MSRV check (scripts/msrv.sh)"

duration=$((SECONDS - start))
if ((${#failures[@]})); then
    echo "package-check: ${#failures[@]} problem(s) in ${duration} s:" >&2
    printf '  %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "package-check: every published crate packages, documents and builds with its MSRV (${duration} s)"
