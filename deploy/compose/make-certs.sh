#!/usr/bin/env bash
# Makes the cross-region certificates of the compose example in deploy/compose/certs, under
# the seed's file names: a CA, the gateways' server certificate (DNS names gateway-a and
# gateway-b) and the region collectors' client certificate. For trying the example only:
# the keys are readable by the containers' user (10001) and never leave this directory.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p certs
cd certs
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=wasmcol example cross-region CA" \
    -keyout ca.key -out cross-region-ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=gateway" -keyout gateway-server.key \
    -out gateway.csr 2>/dev/null
openssl x509 -req -in gateway.csr -CA cross-region-ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile <(printf 'subjectAltName=DNS:gateway-a,DNS:gateway-b\nextendedKeyUsage=serverAuth') \
    -out gateway-server.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=region collector" -keyout cross-region-client.key \
    -out client.csr 2>/dev/null
openssl x509 -req -in client.csr -CA cross-region-ca.crt -CAkey ca.key -CAcreateserial -days 30 \
    -extfile <(printf 'extendedKeyUsage=clientAuth') -out cross-region-client.crt 2>/dev/null
rm -f gateway.csr client.csr cross-region-ca.srl
# The regions' bearer token the gateway also requires (examples/seed-000-*.yaml).
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > cross-region-token
chmod 0644 ./*.crt gateway-server.key cross-region-client.key cross-region-token
chmod 0600 ca.key
echo "certificates in $(pwd)"
