# Shared by scripts/*: where builds go and how to install missing tools. Sourced, not run.

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Builds live outside the clone so that every clone (and every CI run) on this machine
# reuses them.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/code-import/target}
export PATH="$HOME/.cargo/bin:$repo_root/tools/node_modules/.bin:$PATH"

WASM_BINDGEN_VERSION=0.2.130
TRUNK_VERSION=0.21.14

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The Rust side of the build: the wasm32 target, wasm-bindgen (matching Cargo.lock) and Trunk,
# all from the Rust registry; nothing downloads a prebuilt binary.
setup_build_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 2 minutes, once)"
    # Not --locked: its lockfile names a crate version the registry does not serve.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
  fi
  if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
    say "installing trunk $TRUNK_VERSION (about 6 minutes, once)"
    cargo install trunk --version "$TRUNK_VERSION" --locked --force
  fi
  # Debian's brotli, for the bundle's precompressed copies (gzip is on every machine).
  if ! command -v brotli >/dev/null; then
    say "installing Debian's brotli"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq brotli >/dev/null
  fi
}

# wasm-opt for release bundles, from the npm package (Debian's binaryen is too old).
setup_release_tools() {
  if [ ! -x "$repo_root/tools/node_modules/.bin/wasm-opt" ]; then
    say "installing wasm-opt (binaryen) from npm"
    npm ci --prefix "$repo_root/tools" --no-audit --no-fund
  fi
}

# What the tests need: PostgreSQL running, Debian's Chromium, Playwright.
setup_test_tools() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null; then
      say "starting PostgreSQL"
      as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
    fi
    pg_isready -q -h 127.0.0.1 -p 5432 || { echo "error: PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1; }
  fi
  # Debian packages the tests start themselves: the browser, PgBouncer in front of PostgreSQL
  # (the users' databases sit behind a pooler) and HAProxy in front of several servers.
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v pgbouncer >/dev/null || missing+=(pgbouncer)
  command -v haproxy >/dev/null || missing+=(haproxy)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian's ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ ! -d "$repo_root/end2end/node_modules/@playwright/test" ] \
     || [ "$repo_root/end2end/package-lock.json" -nt "$repo_root/end2end/node_modules/.package-lock.json" ]; then
    say "installing the browser-test packages (Playwright uses Debian's chromium, downloads none)"
    npm ci --prefix "$repo_root/end2end" --no-audit --no-fund
  fi
}

# Builds the WASM bundle and the stylesheet. $1: "release" (optimised, and wasm-opt: what a
# user should download) or "debug"; $2: the folder, target/site/pkg unless told another.
build_bundle() {
  local profile=$1 dist=${2:-target/site/pkg}
  cd "$repo_root"
  if [ "$profile" = release ]; then
    trunk build --release --dist "$dist"
  else
    trunk build --dist "$dist"
  fi
  precompress "$profile" "$dist"
}

# Brotli and gzip copies beside the bundle's files, which the server sends to browsers that
# accept them: brotli's best quality for what users download (a quarter smaller than the
# server's on-the-fly compression); a quick one for the debug bundle, which the browser tests
# load on every page and the server would otherwise compress each time.
precompress() {
  local quality=11 level=9 file
  [ "$1" = release ] || { quality=4; level=1; }
  for file in "$2"/*.wasm "$2"/*.js "$2"/*.css; do
    [ -e "$file" ] || continue
    brotli --force --keep --quality="$quality" "$file"
    gzip --force --keep -"$level" "$file"
  done
}

# Builds the bundle into target/site/pkg, then the server binary. $1: "release" or "debug".
build_app() {
  local profile=$1
  build_bundle "$profile"
  if [ "$profile" = release ]; then
    cargo build --release -p server
  else
    cargo build -p server
  fi
}
