#!/usr/bin/env bash
# Provides a local stand-in for the official `python:3.11-slim` image on machines where no
# registry is reachable (see shared/docs/container-engine.md, section 3): a Debian 12 root
# filesystem (python3 is 3.11 there) built by mmdebstrap and imported under the official
# tag, shaped so deploy/Dockerfile runs unchanged on it:
#   - `python`, `python3`, `pip`, `pip3` on PATH in /usr/local/bin, as in the official image;
#   - no PEP 668 EXTERNALLY-MANAGED marker, so `pip install` works as root like upstream;
#   - it trusts the extra CAs this machine trusts (/usr/local/share/ca-certificates), and
#     SSL_CERT_FILE points at the system bundle so uv uses them too: egress from these
#     machines goes through a TLS-intercepting proxy, so builds reaching PyPI need them.
# Real deployments pull the official image; nothing may depend on this beyond its tag.
# Caching, idempotence and output: scripts/standin-lib.sh.
set -euo pipefail

IMAGE=docker.io/library/python:3.11-slim
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
HOOK='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED
for name in python python3; do ln -sf /usr/bin/python3 "$1/usr/local/bin/$name"; done
for name in pip pip3; do ln -sf /usr/bin/pip3 "$1/usr/local/bin/$name"; done
for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$crt" ] && cp "$crt" "$1/usr/local/share/ca-certificates/"
done
chroot "$1" update-ca-certificates >/dev/null'
# Changing the recipe (or the local CAs) changes the key: the tarball is rebuilt.
KEY=$( { printf '%s\n%s\n' "$PACKAGES" "$HOOK"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } \
    | sha256sum | cut -c1-12)
. "$(dirname "$0")/standin-lib.sh"
standin_image "$IMAGE" python "$PACKAGES" "$HOOK" "$KEY" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]'
