# shellcheck shell=bash
# Helpers shared by Pulso's scripts (run-local, run-tests, services.sh, .ci/run). Sourced, not run.
# Every helper works as root and as a normal user with sudo, and prints nothing unless it acts.

# Messages go to stderr, so scripts can print results (a token, a URL) on stdout.
log() { printf '%s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "this step needs root: $* (run it as root, or install sudo)"
    fi
}

# True when systemd manages services here (not the case in most containers and CI sandboxes).
have_systemd() {
    [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1
}

_PULSO_APT_UPDATED=0
# Installs Debian/Ubuntu packages without questions.
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "missing packages: $* (apt-get not found: install them with your package manager)"
    log "installing $* with apt-get..."
    if ((_PULSO_APT_UPDATED == 0)); then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
            die "apt-get update failed"
        _PULSO_APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
        die "apt-get install $* failed"
}

# wait_until SECONDS WHAT COMMAND...: retries COMMAND every 0.2 s until it succeeds; dies after
# SECONDS with "WHAT did not ..." so a hang is never silent.
wait_until() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what (gave up after ${seconds} s)"
        sleep 0.2
    done
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The directories pip installs console scripts into, for the python3 on PATH and for --user.
pip_bin_dirs() {
    command -v python3 >/dev/null 2>&1 || return 0
    python3 - <<'EOF' 2>/dev/null || true
import site, sysconfig, os
print(sysconfig.get_path("scripts"))
print(os.path.join(site.getuserbase(), "bin"))
EOF
}

# Where pip tools go when the system Python refuses pip installs (PEP 668 on Debian 12+).
PULSO_TOOLS_VENV=${PULSO_TOOLS_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/pulso/tools-venv}

# _pip_tool_on_path COMMAND CHECK_ARGS...: puts the directory pip installed COMMAND into on
# PATH, if it is there.
_pip_tool_on_path() {
    local command=$1 dir
    shift
    # Run it rather than `command -v`: a pyenv shim exists for tools of other Python versions too.
    "$command" "$@" >/dev/null 2>&1 && return 0
    while IFS= read -r dir; do
        if [[ -n $dir && -x $dir/$command ]] && "$dir/$command" "$@" >/dev/null 2>&1; then
            PATH="$dir:$PATH"
            export PATH
            return 0
        fi
    done < <(pip_bin_dirs; printf '%s\n' "$PULSO_TOOLS_VENV/bin")
    return 1
}

# ensure_pip_tool PACKAGE COMMAND [CHECK_ARGS...]: makes COMMAND runnable (`COMMAND CHECK_ARGS`,
# default `--version`, succeeds), installing PACKAGE with pip if needed (into the active Python;
# with --user; or, where the system Python is externally managed, into a private virtualenv),
# and puts its directory on PATH for the rest of the script.
ensure_pip_tool() {
    local package=$1 command=$2
    shift 2
    local check_args=("$@")
    ((${#check_args[@]})) || check_args=(--version)
    _pip_tool_on_path "$command" "${check_args[@]}" && return 0
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3 python3-pip python3-venv
    fi
    log "installing $package with pip..."
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
    if python3 -m pip install --quiet "$package" >/dev/null 2>&1 ||
        python3 -m pip install --quiet --user "$package" >/dev/null 2>&1; then
        _pip_tool_on_path "$command" "${check_args[@]}" && return 0
    fi
    # Debian's own python3 refuses pip installs outside a virtualenv (PEP 668).
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    python3 -m venv "$PULSO_TOOLS_VENV" || die "could not create a virtualenv in $PULSO_TOOLS_VENV"
    "$PULSO_TOOLS_VENV/bin/python" -m pip install --quiet "$package" || die "pip install $package failed"
    _pip_tool_on_path "$command" "${check_args[@]}" || die "$package is installed but \`$command ${check_args[*]}\` does not run"
}

# ensure_venv_tool PACKAGE COMMAND: makes COMMAND runnable from a virtualenv of its own (for a
# tool whose dependencies would clash with the others', such as checkov's boto3 with moto's),
# installing PACKAGE (pin it: PACKAGE==VERSION) there if needed, and puts it on PATH.
ensure_venv_tool() {
    local package=$1 command=$2
    local venv=${XDG_DATA_HOME:-$HOME/.local/share}/pulso/venv-$command
    if ! "$venv/bin/$command" --version >/dev/null 2>&1 ||
        ! "$venv/bin/python" -m pip show --quiet "${package%%==*}" >/dev/null 2>&1 ||
        [[ $package == *==* && $("$venv/bin/python" -m pip show "${package%%==*}" 2>/dev/null | sed -n 's/^Version: //p') != "${package##*==}" ]]; then
        if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            apt_install python3 python3-pip python3-venv
        fi
        log "installing $package into $venv..."
        rm -rf "$venv"
        python3 -m venv "$venv" || die "could not create a virtualenv in $venv"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet "$package" ||
            die "pip install $package failed"
    fi
    PATH="$venv/bin:$PATH"
}

