#!/usr/bin/env bash
# Builds the Python region tagger into a WebAssembly component:
#   plugins/examples/python-region/build.sh [OUT.wasm]     (default: py_region.wasm here)
# Needs componentize-py on PATH (`pip install componentize-py==0.25.1`). The bindings are
# generated from the repository's WIT (contract 0.1.0) at build time, so nothing generated
# is committed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/py_region.wasm}"
cd "$here"
componentize-py -d ../../../wit/plugin.wit -w processor componentize app -o "$out"
