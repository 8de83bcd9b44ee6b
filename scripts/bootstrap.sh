# Sourced by scripts/test and scripts/cloudbench: make a fresh Debian machine able to run us.
# Installs only what is missing; needs root (or sudo) for Debian packages.

_apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

_ensure_uv() {
  if ! command -v uv >/dev/null 2>&1; then
    _apt_install python3-pip python3-venv
    python3 -m pip install --quiet --user uv 2>/dev/null \
      || python3 -m pip install --quiet --break-system-packages --user uv
    export PATH="$HOME/.local/bin:$PATH"
  fi
}
