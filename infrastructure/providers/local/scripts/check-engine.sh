#!/bin/sh
# Terraform "external" program: prints {"server_version": "..."} if the engine answers,
# otherwise fails (stderr reaches the Terraform error message).
set -eu
engine="$1"
case "$engine" in
  podman) template='{{.Version.Version}}' ;;
  *) template='{{.ServerVersion}}' ;;
esac
if ! version="$("$engine" info --format "$template" 2>&1)"; then
  echo "container engine '$engine' is not reachable: $version" >&2
  exit 1
fi
printf '{"server_version": "%s"}\n' "$(printf '%s' "$version" | tr -d '"\\\n')"
