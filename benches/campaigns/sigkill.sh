#!/usr/bin/env bash
# SIGKILL campaign (README.md): 20 SIGKILLs of the release collector under load with a
# persistent sending queue; fails when an acknowledged span never reaches the backend.
#
#   benches/campaigns/sigkill.sh [path/to/release/wasmcol] [sigkill flags...]
#
# The collector defaults to target/release/wasmcol (`cargo build --release -p wasmcol`).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
collector="${1:-$root/target/release/wasmcol}"
shift || true
[ -x "$collector" ] || { echo "no collector binary at $collector" >&2; exit 2; }
cargo build --release --manifest-path "$root/benches/campaigns/Cargo.toml"
exec "$root/benches/campaigns/target/release/sigkill" --collector "$collector" "$@"
