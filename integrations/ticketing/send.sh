#!/usr/bin/env bash
# send.sh signs a request body with sign.sh and POSTs it to entra-revoke with curl: the whole
# recipe for a generic system (a ticketing server, a cron job, a SOAR tool that can run a shell).
#
# usage: WEBHOOK_SECRET=whsec_… FUNCTION_KEY=… send.sh https://<app>.azurewebsites.net/api/revoke < body.json
#   WEBHOOK_SECRET  the signing secret (one entry of the Function App's WEBHOOK_SECRETS)
#   FUNCTION_KEY    the revoke function's key (the Functions front end wants it: authLevel function)
#   WEBHOOK_ID      optional; reuse the id of a failed attempt to retry it without a second revocation
#
# It prints entra-revoke's JSON answer and exits 0 for a 2xx status, 1 otherwise. Secrets and the
# function key reach curl through a private temporary file, never its command line.
set -euo pipefail

die() {
	printf 'send.sh: %s\n' "$*" >&2
	exit 2
}

(($# == 1)) || die "usage: send.sh URL < body.json"
url=$1
[[ $url =~ ^https:// || $url =~ ^http://(127\.0\.0\.1|localhost)[:/] ]] || die "the URL must use https"
[[ -n ${FUNCTION_KEY:-} ]] || die "set FUNCTION_KEY to the revoke function's key"
command -v curl >/dev/null 2>&1 || die "curl is not installed"

umask 077
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/body"

# sign.sh checks WEBHOOK_SECRET and prints the three webhook-* header lines.
"$(dirname "${BASH_SOURCE[0]}")/sign.sh" <"$dir/body" >"$dir/headers"
printf 'x-functions-key: %s\nContent-Type: application/json\n' "$FUNCTION_KEY" >>"$dir/headers"

status=$(curl --silent --show-error --proto =https,http --max-time 60 \
	--header @"$dir/headers" --data-binary @"$dir/body" \
	--output "$dir/answer" --write-out '%{http_code}' "$url")
cat "$dir/answer"
echo
[[ $status == 2?? ]]
