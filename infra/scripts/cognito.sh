#!/usr/bin/env bash
# Makes sure the local stand-in for Amazon Cognito answers on 127.0.0.1:$PULSO_COGNITO_PORT
# (default 4402): moto in server mode (PyPI), installed with pip when missing, started in the
# background and left running for the next command (like PostgreSQL and Redis). It speaks the
# Cognito API the functions and the dev tool call through the AWS SDK (AdminCreateUser,
# InitiateAuth, ...) and serves each pool's JWKS; the same server is the Secrets Manager and S3
# stand-in. It keeps everything in memory, so whoever uses it creates what they need
# idempotently (`pulso-devtool identity-pool`, `media-bucket`, the tests' own pools and buckets).
# Pool and client ids are derived from their settings (moto's HASH strategy), so a restarted
# stand-in gives the demo pool the same ids. Prints the endpoint on stdout.
set -euo pipefail

# shellcheck source=infra/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

port=${PULSO_COGNITO_PORT:-4402}
endpoint="http://127.0.0.1:$port"
log_file=${PULSO_COGNITO_LOG:-${TMPDIR:-/tmp}/pulso-cognito-$port.log}

cognito_ready() {
    # Any answer from moto's own API means it is up (it is not a Cognito operation).
    curl -fsS -o /dev/null --max-time 2 "$endpoint/moto-api/" 2>/dev/null
}

if ! cognito_ready; then
    port_open "$port" && die "port $port is taken by something that is not the Cognito stand-in (set PULSO_COGNITO_PORT)"
    command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
    ensure_pip_tool "moto[server]==5.2.5" moto_server --help
    log "starting the Cognito stand-in (moto) on $endpoint (log: $log_file)..."
    MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY=HASH \
        MOTO_COGNITO_IDP_USER_POOL_CLIENT_ID_STRATEGY=HASH \
        setsid nohup moto_server -H 127.0.0.1 -p "$port" >"$log_file" 2>&1 </dev/null &
    wait_until 30 "the Cognito stand-in did not answer on $endpoint (see $log_file)" cognito_ready
fi
printf '%s\n' "$endpoint"
