#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis are installed, running on 127.0.0.1 and ready for Pulso:
# roles pulso_owner (schema owner, CREATEDB for the tests' databases, member of pulso_app so it
# can end that role's sessions), pulso_app (the functions' role: no superuser, no BYPASSRLS,
# so row-level security applies) and pulso_system (the scheduler's role: pulso_app plus reading
# the list of clinics), database pulso, and the btree_gist extension available. Idempotent and quiet: it only speaks when it acts.
#
# Installs with apt-get on Debian/Ubuntu when something is missing; starts the services with
# systemd when it runs the machine, directly otherwise (containers, CI sandboxes). Works as root
# and as a normal user with sudo.
set -euo pipefail

# shellcheck source=infra/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT=5432
REDIS_PORT=6379

postgres_ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }
redis_ready() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

ensure_postgres() {
    if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! command -v pg_isready >/dev/null 2>&1; then
        apt_install postgresql
    fi
    command -v pg_isready >/dev/null 2>&1 || apt_install postgresql-client
    postgres_ready && return 0

    log "starting PostgreSQL..."
    if have_systemd; then
        as_root systemctl start postgresql
    else
        command -v pg_lsclusters >/dev/null 2>&1 ||
            die "PostgreSQL is not answering on 127.0.0.1:$PG_PORT and this is not a Debian-style install (no pg_lsclusters): start it yourself"
        local clusters version
        clusters=$(pg_lsclusters --no-header 2>/dev/null || true)
        if [[ -z $clusters ]]; then
            # A package installed without its default cluster (e.g. create_main_cluster = false).
            version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -n 1)
            [[ -n $version ]] || die "no PostgreSQL server found in /usr/lib/postgresql"
            log "creating PostgreSQL cluster $version/main..."
            as_root pg_createcluster "$version" main >/dev/null
            clusters=$(pg_lsclusters --no-header)
        fi
        local ver name port status
        while read -r ver name port status _; do
            if [[ $port == "$PG_PORT" && $status != online* ]]; then
                as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start ||
                    die "pg_ctlcluster $ver $name start failed (see /var/log/postgresql/postgresql-$ver-$name.log)"
            fi
        done <<<"$clusters"
    fi
    wait_until 30 "PostgreSQL did not answer on 127.0.0.1:$PG_PORT (see /var/log/postgresql/)" postgres_ready
}

ensure_redis() {
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    command -v redis-cli >/dev/null 2>&1 || apt_install redis-tools
    redis_ready && return 0

    log "starting Redis..."
    if have_systemd; then
        as_root systemctl start redis-server
    else
        # A throw-away dev cache: no persistence, loopback only.
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
            --save "" --appendonly no --dir "${TMPDIR:-/tmp}" >/dev/null ||
            die "redis-server did not start"
    fi
    wait_until 15 "Redis did not answer on 127.0.0.1:$REDIS_PORT" redis_ready
}

# psql as the postgres superuser: over the local socket (peer auth) as the postgres OS user
# when we can become it, else over TCP as postgres (trust setups). Chosen once, on first use.
PSQL_SUPER=()
choose_superuser_psql() {
    local candidates=()
    if [[ $EUID -eq 0 ]] && command -v runuser >/dev/null 2>&1; then
        candidates+=("runuser -u postgres -- psql")
    elif command -v sudo >/dev/null 2>&1; then
        candidates+=("sudo -n -u postgres psql")
    fi
    candidates+=("psql -w -h 127.0.0.1 -p $PG_PORT -U postgres")
    if [[ $EUID -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
        candidates+=("sudo -u postgres psql") # may ask for the sudo password
    fi
    local candidate
    for candidate in "${candidates[@]}"; do
        read -r -a PSQL_SUPER <<<"$candidate"
        if (cd / && "${PSQL_SUPER[@]}" -X -At -d postgres -c 'SELECT 1') >/dev/null 2>&1; then
            return 0
        fi
    done
    die "cannot connect to PostgreSQL as the postgres superuser (tried: ${candidates[*]})"
}

# psql_super [psql args...]: runs as the superuser, stops at the first SQL error.
psql_super() {
    ((${#PSQL_SUPER[@]})) || choose_superuser_psql
    # cd /: the postgres user may not be allowed into the caller's directory.
    (cd / && "${PSQL_SUPER[@]}" -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@")
}

ensure_roles_and_database() {
    # Roles: create when missing (with a notice), then always (quietly) pin the attributes and
    # passwords the connection strings in .dev/env and infra/run-tests rely on. Debian's pg_hba
    # asks for a password over 127.0.0.1, so the passwords matter.
    psql_super <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pulso_owner') THEN
        CREATE ROLE pulso_owner;
        RAISE NOTICE 'created role pulso_owner';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pulso_app') THEN
        CREATE ROLE pulso_app;
        RAISE NOTICE 'created role pulso_app';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pulso_system') THEN
        CREATE ROLE pulso_system;
        RAISE NOTICE 'created role pulso_system';
    END IF;
END
$$;
ALTER ROLE pulso_owner LOGIN PASSWORD 'pulso_owner' NOSUPERUSER CREATEDB CREATEROLE;
ALTER ROLE pulso_app LOGIN PASSWORD 'pulso_app' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
-- The scheduler's role (SYSTEM_DATABASE_URL). Its privileges come from the migrations
-- (membership in pulso_app, a policy to read every clinic); here it only gets a login.
ALTER ROLE pulso_system LOGIN PASSWORD 'pulso_system' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
-- Membership lets the owner end the app role's sessions, which the tests' cleanup needs for
-- `DROP DATABASE ... WITH (FORCE)` (same rule as pg_terminate_backend). It gives the owner
-- nothing else: it already owns every table. Re-granting an existing membership only notices.
SET client_min_messages = warning;
GRANT pulso_app TO pulso_owner;
-- pulso_system's sessions (the scheduler tests) must end too, but membership in pulso_system
-- would also hand the owner that role's read-every-clinic policy: pg_signal_backend lets it end
-- any non-superuser session instead, and carries no table access.
GRANT pg_signal_backend TO pulso_owner;
SQL

    # infra/run-local's database: pulso, or PULSO_DATABASE for a second stack (its caller
    # checked the name).
    local database=${PULSO_DATABASE:-pulso}
    if [[ -z $(psql_super -c "SELECT 1 FROM pg_database WHERE datname = '$database'") ]]; then
        psql_super -c "CREATE DATABASE $database OWNER pulso_owner"
        log "created database $database (owner pulso_owner)"
    fi

    if [[ -z $(psql_super -c "SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gist'") ]]; then
        apt_install postgresql-contrib
        [[ -n $(psql_super -c "SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gist'") ]] ||
            die "the btree_gist extension is not available: install your PostgreSQL's contrib package"
    fi
}

ensure_postgres
ensure_redis
ensure_roles_and_database
