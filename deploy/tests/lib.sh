# shellcheck shell=bash
# Shared helpers for deploy/tests/*.sh (sourced, not executed).

# apt_install PKG...: installs Debian packages when running as root with apt-get;
# returns non-zero when that is not possible. Runs `apt-get update` once if the first
# attempt fails (fresh CI images have empty package lists).
apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        return 1
    fi
    echo "installing $* (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 && return 0
    apt-get update -q >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1
}

# The Python that python3-yaml from apt installs into; falls back to python3 on PATH.
pick_python() {
    if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=$(command -v python3 || true); fi
}

# ensure_pyyaml: sets PY to a python3 that can `import yaml`, installing python3-yaml
# if needed; returns non-zero when that is impossible.
ensure_pyyaml() {
    pick_python
    if [ -z "$PY" ]; then apt_install python3 python3-yaml || return 1; pick_python; fi
    "$PY" -c 'import yaml' 2>/dev/null && return 0
    apt_install python3-yaml || true
    "$PY" -c 'import yaml' 2>/dev/null && return 0
    # Last resort: a python3 on PATH that already has yaml (e.g. a developer's venv).
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import yaml' 2>/dev/null; then PY=$(command -v python3); return 0; fi
    return 1
}
