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
# Idempotent: the rootfs tarball is cached under /var/cache/cloudbench (keyed by a hash
# of this recipe) and the import is skipped when the tagged image carries that key.
# Needs root, podman and mmdebstrap (scripts/setup-container-engine.sh installs them).
# Prints the image reference on stdout; progress goes to stderr.
set -euo pipefail

IMAGE=docker.io/library/python:3.11-slim
CACHE_DIR=/var/cache/cloudbench
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
ROOTFS_TAR="${CACHE_DIR}/python-rootfs-bookworm-${KEY}.tar"
LABEL=org.cloudbench.standin

log() { echo "standin-python-image: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (rootful podman)"; exit 2
fi
for tool in podman mmdebstrap; do
    command -v "$tool" >/dev/null 2>&1 || { log "$tool missing; run setup-container-engine.sh"; exit 2; }
done

old_id=
if podman image exists "$IMAGE"; then
    old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
    current=$(podman image inspect --format "{{ index .Labels \"${LABEL}\" }}" "$IMAGE")
    if [ -z "$current" ] || [ "$current" = "<no value>" ]; then
        log "$IMAGE is there and is not a stand-in (the official image?): keeping it"
        current=$KEY
    fi
else
    current=
fi
if [ "$current" != "$KEY" ]; then
    mkdir -p "$CACHE_DIR"
    if [ ! -s "$ROOTFS_TAR" ]; then
        log "building Debian python3 rootfs with mmdebstrap (about a minute)"
        mmdebstrap --format=tar --variant=apt --include="$PACKAGES" \
            --customize-hook="$HOOK" bookworm "${ROOTFS_TAR}.part" >&2
        mv "${ROOTFS_TAR}.part" "$ROOTFS_TAR"
        find "$CACHE_DIR" -maxdepth 1 -name 'python-rootfs-bookworm-*.tar' \
            ! -name "$(basename "$ROOTFS_TAR")" -delete
    fi
    log "importing $IMAGE"
    podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change "LABEL ${LABEL}=${KEY}" \
        --change 'CMD ["python3"]' \
        "$ROOTFS_TAR" "$IMAGE" >&2
    # The outdated stand-in is now untagged; drop it unless something still uses it.
    [ -n "$old_id" ] && podman rmi "$old_id" >/dev/null 2>&1 || true
fi
echo "$IMAGE"
