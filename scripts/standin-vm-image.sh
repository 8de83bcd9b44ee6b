#!/usr/bin/env bash
# The AWS twin's VM image (tests/twin): a Debian 12 root filesystem standing in for the
# Ubuntu AMI the stacks boot, with what their user-data installs already there, so
# `apt-get install` succeeds without leaving the machine:
#   - the Debian packages the orchestrator and runner user-data name (python3-venv,
#     python3-boto3, postgresql, docker.io, ca-certificates, curl, git);
#   - no APT sources, so `apt-get update` succeeds at once and fetches nothing;
#   - a wheelhouse of cloudbench's locked dependencies (uv.lock, Python 3.11) and a
#     /etc/pip.conf pointing pip at it (no index), as a package mirror would;
#   - this machine's extra CAs (egress goes through a TLS-intercepting proxy; the
#     wheelhouse download needs them).
# The twin mounts its init, shims and IMDS client at run time (tests/twin/vm), so
# changing those needs no rebuild. Real runs boot Ubuntu from AWS; nothing in src/
# depends on this image. Caching, idempotence and output: scripts/standin-lib.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$HOME/.local/bin:$PATH"
BASE=localhost/cloudbench-twin-vm-base:bookworm
IMAGE=localhost/cloudbench-twin-vm:bookworm
PACKAGES=ca-certificates,curl,git,procps,iproute2,python3,python3-venv,python3-pip,python3-boto3,postgresql,docker.io
REQUIREMENTS=$(cd "$ROOT" && uv export --frozen --no-dev --no-emit-project --no-hashes --quiet | grep -v '^ *#' | grep -v '^$')
HOOK='for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$crt" ] && cp "$crt" "$1/usr/local/share/ca-certificates/"
done
chroot "$1" update-ca-certificates >/dev/null
cp /etc/resolv.conf "$1/etc/resolv.conf"
printf "%s\n" "$CLOUDBENCH_TWIN_REQUIREMENTS" >"$1/tmp/requirements.txt"
chroot "$1" python3 -m pip download --quiet --disable-pip-version-check --dest /opt/wheelhouse -r /tmp/requirements.txt
rm -f "$1/tmp/requirements.txt"
printf "[global]\nno-index = true\nfind-links = /opt/wheelhouse\ndisable-pip-version-check = true\n" >"$1/etc/pip.conf"
: >"$1/etc/apt/sources.list"
rm -f "$1"/etc/apt/sources.list.d/*
rm -rf "$1"/var/lib/apt/lists/*'
export CLOUDBENCH_TWIN_REQUIREMENTS=$REQUIREMENTS
KEY=$( { printf '%s\n%s\n%s\n' "$PACKAGES" "$HOOK" "$REQUIREMENTS"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } \
    | sha256sum | cut -c1-12)
. "$(dirname "$0")/standin-lib.sh"
standin_image "$BASE" twin-vm "$PACKAGES" "$HOOK" "$KEY" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' >/dev/null
# Ubuntu 24.04's boto3 (1.34) reads AWS_ENDPOINT_URL; Debian 12's (1.26) does not. The
# locked boto3 from the wheelhouse goes over it, in /usr/local as pip puts it. pip skips
# byte-compiling (Python compiles on first import instead): the twin's VMs install on two
# busy cores.
# Debian's Ruby 3.1 too: without a container engine in the VM (the twin's default) the
# runner's host executor runs the benchmarks with it.
LAYER='RUN python3 -m pip install --quiet --break-system-packages --ignore-installed boto3 \
 && printf "no-compile = true\n" >>/etc/pip.conf \
 && echo "deb http://deb.debian.org/debian bookworm main" >/etc/apt/sources.list \
 && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ruby \
 && rm -rf /var/lib/apt/lists/* && : >/etc/apt/sources.list'
base_id=$(podman image inspect --format '{{.Id}}' "$BASE")
layer_key=$(printf '%s\n%s\n' "$base_id" "$LAYER" | sha256sum | cut -c1-12)
built=$(podman image inspect --format '{{ index .Labels "org.cloudbench.twin-layer" }}' "$IMAGE" 2>/dev/null || true)
if [ "$built" != "$layer_key" ]; then
    _standin_log twin-vm "building $IMAGE on $BASE"
    printf 'FROM %s\n%s\nLABEL org.cloudbench.twin-layer=%s\n' "$BASE" "$LAYER" "$layer_key" \
        | podman build --quiet -t "$IMAGE" -f - >&2
fi
echo "$IMAGE"
