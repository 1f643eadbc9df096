#!/usr/bin/env bash
# Builds the wasmcol container image without pulling anything: the image is FROM scratch, and
# this script stages its root filesystem from a built binary and this machine's files.
#
#   deploy/build-image.sh [--binary PATH] [--tag NAME:TAG] [--config FILE] [--no-strip]
#
#   --binary   the collector to ship (default target/release/wasmcol; build it first with
#              `cargo build --release -p wasmcol`)
#   --tag      the image name (default wasmcol:dev)
#   --config   the default config baked in as /etc/wasmcol/config.yaml
#              (default deploy/config.yaml)
#   --no-strip ship the binary as it is (by default a stripped copy is shipped)
#
# What goes in: the binary; exactly the shared libraries `ldd` lists for it, and its ELF
# loader, copied from this machine at the same paths (or nothing, for a static binary); the
# CA bundle (/etc/ssl/certs/ca-certificates.crt) for TLS to public backends; /etc/passwd and
# /etc/group naming the non-root user 10001 (wasmcol); nsswitch.conf so host names resolve
# through /etc/hosts then DNS; /tmp; and, owned by 10001, the plugin compile cache
# (/var/cache/wasmcol) and the queue root (/var/otel/queue with the seed configs'
# subdirectories), both declared volumes.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
binary="$root/target/release/wasmcol"
tag="wasmcol:dev"
config="$root/deploy/config.yaml"
strip=1
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --tag) tag="$2"; shift 2 ;;
        --config) config="$2"; shift 2 ;;
        --no-strip) strip=0; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "build-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ ! -x "$binary" ]; then
    echo "build-image.sh: no executable at $binary; build it with" \
        "'cargo build --release -p wasmcol' or pass --binary PATH" >&2
    exit 1
fi
[ -f "$config" ] || { echo "build-image.sh: no config at $config" >&2; exit 1; }
cabundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$cabundle" ] || { echo "build-image.sh: no CA bundle at $cabundle (install ca-certificates)" >&2; exit 1; }
command -v docker >/dev/null || { echo "build-image.sh: docker is not installed" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
fs="$ctx/rootfs"
mkdir -p "$fs/usr/local/bin" "$fs/etc/wasmcol" "$fs/etc/ssl/certs" "$fs/tmp" \
    "$fs/var/cache" "$fs/var/otel"
chmod 1777 "$fs/tmp"

if [ "$strip" = 1 ] && command -v strip >/dev/null; then
    strip -o "$fs/usr/local/bin/wasmcol" "$binary"
else
    cp "$binary" "$fs/usr/local/bin/wasmcol"
fi
chmod 0755 "$fs/usr/local/bin/wasmcol"

# Shared libraries: every `=> /path` ldd resolves, and the loader (the line that is a bare
# absolute path). linux-vdso has no file. A static binary has neither.
if ldd "$binary" >/dev/null 2>&1; then
    ldd "$binary" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' | sort -u |
        while read -r lib; do
            mkdir -p "$fs$(dirname "$lib")"
            cp -L "$lib" "$fs$lib"
        done
    # Debian's loader path is /lib64/ld-linux-x86-64.so.2 and /lib64 a directory of links:
    # the copy above kept the path the binary asks for.
fi

cp "$cabundle" "$fs/etc/ssl/certs/ca-certificates.crt"
cp "$config" "$fs/etc/wasmcol/config.yaml"
cat > "$fs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
wasmcol:x:10001:10001:wasmcol:/nonexistent:/sbin/nologin
PASSWD
cat > "$fs/etc/group" <<'GROUP'
root:x:0:
wasmcol:x:10001:
GROUP
# glibc's resolver (built into libc.so.6 since 2.34) reads this for the lookup order.
echo "hosts: files dns" > "$fs/etc/nsswitch.conf"

# Written by the collector, so owned by its user (COPY --chown in the Dockerfile); a named
# volume mounted there starts as a copy of these, ownership included.
w="$ctx/writable"
mkdir -p "$w/var/cache/wasmcol" "$w/var/otel/queue/local" "$w/var/otel/queue/cross-region" \
    "$w/var/otel/queue/failover"

cp "$root/deploy/Dockerfile" "$ctx/Dockerfile"
# The legacy builder prints a deprecation notice on stderr when buildx is absent; the image
# is the same.
docker build --quiet --tag "$tag" "$ctx" >/dev/null
size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "built $tag ($((size / 1024 / 1024)) MiB) from $binary"
