#!/usr/bin/env bash
# Fuzzes a running local stack against its own OpenAPI document (infra/run-local --fuzz runs it;
# CI after the tests): schemathesis, pinned below, once per role (a platform admin, a dentist, a
# receptionist of the demo's sonrisa, and the demo chain's organization admin), in parallel,
# each with its own token and rate-limit budget. Every operation for the clinic roles; `/me` and
# the organization routes for the organization admin, who is on no clinic's staff (every clinic
# route would answer her 403). Positive and negative data, the stateful phase where the
# document declares links; the checks: no 5xx, every status, header, content type and body as
# documented.
#
#   infra/scripts/schemathesis.sh http://127.0.0.1:4400
#
# Its settings (PULSO_FUZZ_EXAMPLES, PULSO_FUZZ_SEED, PULSO_FUZZ_RATE) are in
# docs/configuration.md; each role's report is .dev/schemathesis-<role>.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# shellcheck source=infra/scripts/lib.sh
source infra/scripts/lib.sh

base=${1:?usage: infra/scripts/schemathesis.sh BASE_URL}
examples=${PULSO_FUZZ_EXAMPLES:-8}
seed=${PULSO_FUZZ_SEED:-20261206}
target_dir=${CARGO_TARGET_DIR:-target}
# Under the per-user read limit (600 a minute): a 429 is documented, but it tests nothing.
rate=${PULSO_FUZZ_RATE:-480/m}
checks=not_a_server_error,status_code_conformance,response_schema_conformance
checks+=,content_type_conformance,response_headers_conformance

ensure_pip_tool "schemathesis==4.32.5" schemathesis --version
set -a
# shellcheck source=/dev/null
. .dev/env
set +a

roles=(admin dentist receptionist org-admin)
declare -A pids
for role in "${roles[@]}"; do
    only=()
    phases=examples,coverage,fuzzing,stateful
    case $role in
    admin) flags=(--clinic sonrisa --role admin --platform-admin) ;;
    org-admin)
        flags=(--email isabel.navarro@grupo-pulso.pulso.test)
        only=(--include-path-regex '^/(me|organization)(/|$)')
        # No links among these three operations: nothing for the stateful phase to follow.
        phases=examples,coverage,fuzzing
        ;;
    *) flags=(--clinic sonrisa --role "$role") ;;
    esac
    token=$("$target_dir/debug/pulso-devtool" token "${flags[@]}" 2>/dev/null) ||
        die "could not mint the $role token (pulso-devtool token ${flags[*]})"
    schemathesis run "$base/openapi.json" \
        "${only[@]}" \
        --header "Authorization: Bearer $token" \
        --checks "$checks" \
        --mode all \
        --phases "$phases" \
        --max-examples "$examples" \
        --seed "$seed" \
        --rate-limit "$rate" \
        --request-timeout 30 \
        --generation-database .dev/schemathesis-examples \
        --no-color \
        >".dev/schemathesis-$role.log" 2>&1 </dev/null &
    pids[$role]=$!
done

failed=0
for role in "${roles[@]}"; do
    if wait "${pids[$role]}"; then
        outcome=passed
    else
        outcome=FAILED
        failed=1
    fi
    operations=$(grep -m1 -E '^ +Tested: ' ".dev/schemathesis-$role.log" | tr -s ' ' || true)
    cases=$(grep -A1 -m1 -E '^Test cases:' ".dev/schemathesis-$role.log" | tail -1 | tr -s ' ' || true)
    log "schemathesis as $role: $outcome; operations$operations; cases:$cases (.dev/schemathesis-$role.log)"
done
if ((failed)); then
    for role in "${roles[@]}"; do
        log "---- .dev/schemathesis-$role.log: failures ----"
        sed -n '/^=* FAILURES =*$/,/^=* SUMMARY =*$/p' ".dev/schemathesis-$role.log" | head -150 >&2
    done
    die "schemathesis found responses that break docs/openapi.json"
fi
