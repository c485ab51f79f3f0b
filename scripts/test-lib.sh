# test-lib.sh: what scripts/docker-test.sh and scripts/systemd-test.sh share
# (sourced, not run): counting checks, HTTP requests through a curl the
# caller chooses, and the closing "N passed, N failed" line.
#
# The caller sets `name` (the test's name for messages) and `curl_cmd` (how
# to run curl: the host's, or one inside the container), and `base` (the
# URL of rosimd).

passed=0
failed=0

say() { echo "$name: $*"; }
ok() { passed=$((passed + 1)); say "ok   $*"; }
not_ok() { failed=$((failed + 1)); say "FAIL $*"; }

# check DESCRIPTION COMMAND...: a check that passes when COMMAND succeeds.
check() {
    what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}

# skip REASON: the test cannot run here; exit 77 (the automake convention)
skip() {
    say "SKIP: $*"
    exit 77
}

# die REASON: a step the rest depends on failed.
die() {
    not_ok "$*"
    summary
}

summary() {
    say "$passed passed, $failed failed"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ] || exit 1
    exit 0
}

# req METHOD PATH [JSON]: sets $status and $body.
req() {
    out=$($curl_cmd -sS -X "$1" -H 'Content-Type: application/json' \
          ${3:+--data-binary "$3"} -w '\n%{http_code}' "$base$2" 2>&1) || true
    status=$(printf '%s\n' "$out" | tail -n 1)
    body=$(printf '%s\n' "$out" | sed '$d')
}

# expect STATUS METHOD PATH [JSON] [TEXT]: the request answers STATUS and,
# when TEXT is given, a body containing it.
expect() {
    want=$1 text=${5:-}
    req "$2" "$3" "${4:-}"
    if [ "$status" = "$want" ] && { [ -z "$text" ] || printf '%s' "$body" | grep -qF -- "$text"; }; then
        ok "$2 $3 -> $status"
    else
        not_ok "$2 $3 -> $status (want $want${text:+ with $text}): $(printf '%s' "$body" | head -c 300)"
    fi
}

# wait_for SECONDS COMMAND...: retry COMMAND every half second.
wait_for() {
    limit=$1
    shift
    end=$(($(date +%s) + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.5
    done
}

# ms: milliseconds since the epoch.
ms() { date +%s%3N; }

# exercise_api PREFIX: every route of the API, once, on a fresh collection
# named PREFIX-docs; leaves documents q1 and q2 in it.
exercise_api() {
    c="$1-docs"
    expect 200 GET /healthz "" '"ok"'
    expect 200 GET /readyz
    expect 200 GET /v1/info "" '"model"'
    expect 200 POST /v1/tokenize '{"texts":["今天天气不错"]}' '"tokens"'
    expect 200 POST /v1/embed '{"texts":["今天天气不错","明天会下雨"]}' '"embeddings"'
    expect 200 POST /v1/embeddings '{"input":"今天天气不错","model":"roformer-sim"}' '"embedding"'
    expect 200 POST /v1/similarity '{"source":"今天天气不错","targets":["今天天气很好","我想吃饭"]}' '"scores"'
    expect 200 POST /v1/generate '{"text":"今天天气不错","n":4,"k":2,"seed":1}' '"paraphrases"'
    expect 200 POST /v1/generate '{"texts":["今天天气不错","明天会下雨"],"n":2,"k":1,"beam":2}' '"results"'
    expect 201 PUT "/v1/collections/$c" '{"index":"Flat"}'
    expect 200 GET /v1/collections "" "\"$c\""
    expect 200 GET "/v1/collections/$c"
    expect 200 POST "/v1/collections/$c/documents" \
        '{"documents":[{"id":"q1","text":"怎么开通花呗","meta":{"n":1}},{"id":"q2","text":"花呗怎么还款"},{"id":"a/b","text":"借呗额度"}]}'
    expect 200 GET "/v1/collections/$c/documents/q1" "" '"meta"'
    expect 200 GET "/v1/collections/$c/documents/a%2Fb" "" '"借呗额度"'
    expect 200 DELETE "/v1/collections/$c/documents/a%2Fb"
    expect 404 GET "/v1/collections/$c/documents/a%2Fb"
    expect 200 POST "/v1/collections/$c/search" '{"text":"花呗如何开通","k":2}' '"q1"'
    expect 201 PUT "/v1/collections/$1-gone" '{}'
    expect 200 DELETE "/v1/collections/$1-gone"
    expect 404 GET "/v1/collections/$1-gone"
    expect 200 GET /metrics "" 'rosim'
    expect 404 GET /no/such/route "" '"error"'
}
