#!/usr/bin/env bash
# Sets up a Docker-compatible engine (rootful podman + runc) on a Debian machine that has
# no Docker engine and no registry access, following shared/docs/container-engine.md.
# Idempotent: every step is skipped when its result is already there.
# Prints `export DOCKER_HOST=...` on stdout as its last line; progress goes to stderr.
set -euo pipefail

SOCK_PATH=/run/podman/podman.sock
DOCKER_HOST_URL="unix://${SOCK_PATH}"
CACHE_DIR=/var/cache/cloudbench
ROOTFS_TAR="${CACHE_DIR}/ruby-rootfs-bookworm.tar"
RUBY_IMAGE=docker.io/library/ruby:3.1
SERVICE_LOG="${CACHE_DIR}/podman-service.log"

log() { echo "setup-container-engine: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (rootful podman)"; exit 2
fi
if [ ! -r /etc/debian_version ]; then
    log "only Debian is supported by this script"; exit 2
fi

missing=()
for tool in podman runc mmdebstrap curl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc mmdebstrap curl >&2
fi

# crun fails on hybrid cgroups and raising rlimits is not allowed on these machines.
mkdir -p /etc/containers
conf=/etc/containers/containers.conf
want='[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"'
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
    log "writing $conf"
    printf '%s\n' "$want" > "$conf"
fi

mkdir -p "$CACHE_DIR"
if ! podman image exists "$RUBY_IMAGE"; then
    if [ ! -s "$ROOTFS_TAR" ]; then
        log "building Debian ruby rootfs with mmdebstrap (about a minute)"
        mmdebstrap --format=tar --variant=apt --include=ruby,git,ca-certificates bookworm \
            "${ROOTFS_TAR}.part" >&2
        mv "${ROOTFS_TAR}.part" "$ROOTFS_TAR"
    fi
    log "importing $RUBY_IMAGE"
    podman import "$ROOTFS_TAR" "$RUBY_IMAGE" >&2
fi

answers() {
    curl -sf --max-time 3 --unix-socket "$SOCK_PATH" http://d/_ping >/dev/null 2>&1
}
# A service started from a directory that was deleted since (a CI clone) answers pings but
# cannot start containers: conmon inherits its cwd ("Failed to get working directory").
for pid in $(pgrep -f "podman system service --time=0 ${DOCKER_HOST_URL}" || true); do
    if [[ "$(readlink "/proc/${pid}/cwd")" == *" (deleted)" ]]; then
        log "restarting podman system service (its working directory was deleted)"
        kill "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
done
# A live service slow under load (a busy machine) is waited for, not replaced: removing
# its socket would cut off everyone using it.
if ! answers && pgrep -f "podman system service --time=0 ${DOCKER_HOST_URL}" >/dev/null; then
    log "podman system service is running but slow to answer; waiting for it"
    for _ in $(seq 1 60); do
        answers && break
        sleep 1
    done
fi
if ! answers; then
    log "starting podman system service on $DOCKER_HOST_URL"
    mkdir -p "$(dirname "$SOCK_PATH")"
    rm -f "$SOCK_PATH"
    # setsid: the service outlives this script (and the shell that ran it).
    # From /: the service (and every conmon it starts) keeps its working directory.
    (cd / && exec setsid podman system service --time=0 "$DOCKER_HOST_URL" \
        >>"$SERVICE_LOG" 2>&1 < /dev/null) &
    for _ in $(seq 1 50); do
        answers && break
        sleep 0.2
    done
    answers || { log "podman service did not answer; see $SERVICE_LOG"; exit 1; }
fi

echo "export DOCKER_HOST=${DOCKER_HOST_URL}"
