# Sourced by scripts/standin-*-image.sh: builds a Debian 12 root filesystem with mmdebstrap
# and imports it under an official image tag, for machines where no registry is reachable
# (shared/docs/container-engine.md, section 3). Idempotent: the rootfs tarball is cached
# under /var/cache/cloudbench by the recipe's key, and the import is skipped when the tagged
# image carries that key; an image under the tag without the label (the official one) stays.
#
#   standin_image IMAGE NAME PACKAGES HOOK KEY [podman import --change ARGS...]
#
# Needs root, podman and mmdebstrap (scripts/setup-container-engine.sh installs them).
# Prints the image reference on stdout; progress goes to stderr.

standin_image() {
    local image=$1 name=$2 packages=$3 hook=$4 key=$5
    shift 5
    local cache_dir=/var/cache/cloudbench label=org.cloudbench.standin
    local rootfs="${cache_dir}/${name}-rootfs-bookworm-${key}.tar"
    local old_id= current= lock_fd=

    if [ "$(id -u)" -ne 0 ]; then
        _standin_log "$name" "must run as root (rootful podman)"; return 2
    fi
    for tool in podman mmdebstrap; do
        command -v "$tool" >/dev/null 2>&1 \
            || { _standin_log "$name" "$tool missing; run setup-container-engine.sh"; return 2; }
    done
    mkdir -p "$cache_dir"
    # One build per stand-in at a time: parallel callers (test workers) would write the
    # same rootfs and import the same tag. The lock is released when this shell exits.
    exec {lock_fd}>"${cache_dir}/${name}.lock"
    flock "$lock_fd"
    if podman image exists "$image"; then
        old_id=$(podman image inspect --format '{{.Id}}' "$image")
        current=$(podman image inspect --format "{{ index .Labels \"${label}\" }}" "$image")
        if [ -z "$current" ] || [ "$current" = "<no value>" ]; then
            _standin_log "$name" "$image is there and is not a stand-in (the official image?): keeping it"
            current=$key
        fi
    fi
    if [ "$current" != "$key" ]; then
        if [ ! -s "$rootfs" ]; then
            _standin_log "$name" "building Debian rootfs ($packages) with mmdebstrap (about a minute)"
            mmdebstrap --format=tar --variant=apt --include="$packages" \
                --customize-hook="$hook" bookworm "${rootfs}.part" >&2
            mv "${rootfs}.part" "$rootfs"
            find "$cache_dir" -maxdepth 1 -name "${name}-rootfs-bookworm-*.tar" \
                ! -name "$(basename "$rootfs")" -delete
        fi
        _standin_log "$name" "importing $image"
        podman import "$@" --change "LABEL ${label}=${key}" "$rootfs" "$image" >&2
        # The outdated stand-in is now untagged; drop it unless something still uses it.
        [ -n "$old_id" ] && podman rmi "$old_id" >/dev/null 2>&1 || true
    fi
    echo "$image"
}

_standin_log() { echo "standin-$1-image: $2" >&2; }
