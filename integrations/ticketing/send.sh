#!/usr/bin/env bash
# send.sh signs a request body with sign.sh and POSTs it to entra-revoke with curl: the whole
# recipe for a generic system (a ticketing server, a cron job, a SOAR tool that can run a shell).
#
# usage: WEBHOOK_SECRET=whsec_… FUNCTION_KEY=… send.sh [--wait] https://<app>.azurewebsites.net/api/revoke < body.json
#   WEBHOOK_SECRET  the signing secret (one entry of the Function App's WEBHOOK_SECRETS)
#   FUNCTION_KEY    the revoke function's key (the Functions front end wants it: authLevel function)
#   WEBHOOK_ID      optional; reuse the id of a failed attempt to retry it without a second revocation
#   --wait          when entra-revoke queues the revocation (202), follow its status link with
#                   status.sh --wait until the outcome is final
#   STATUS_BASE     optional: where status links may point (default: the scheme and host of the
#                   URL); a link anywhere else is not followed
#
# It prints entra-revoke's JSON answer (with --wait, the final one) and exits 0 when every user is
# revoked or dry_run, 3 when the revocation is queued (the status link is printed on stderr: keep
# it on the ticket and read it later with status.sh), 1 for any other answer. Secrets and the
# function key reach curl through a private temporary file, never its command line; nothing
# secret is sent to the status link.
set -euo pipefail

die() {
	printf 'send.sh: %s\n' "$*" >&2
	exit 2
}

wait=false
if [[ ${1:-} == --wait ]]; then
	wait=true
	shift
fi
(($# == 1)) || die "usage: send.sh [--wait] URL < body.json"
url=$1
[[ $url =~ ^https:// || $url =~ ^http://(127\.0\.0\.1|localhost)[:/] ]] || die "the URL must use https"
[[ -n ${FUNCTION_KEY:-} ]] || die "set FUNCTION_KEY to the revoke function's key"
command -v curl >/dev/null 2>&1 || die "curl is not installed"
[[ $url =~ ^([a-z]+://[^/?#]+) ]]
base=${STATUS_BASE:-${BASH_REMATCH[1]}}
here=$(dirname "${BASH_SOURCE[0]}")

umask 077
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/body"

# sign.sh checks WEBHOOK_SECRET and prints the three webhook-* header lines.
"$here/sign.sh" <"$dir/body" >"$dir/headers"
printf 'x-functions-key: %s\nContent-Type: application/json\n' "$FUNCTION_KEY" >>"$dir/headers"

status=$(curl --silent --show-error --proto =https,http --max-time 60 \
	--header @"$dir/headers" --data-binary @"$dir/body" \
	--dump-header "$dir/response-headers" --output "$dir/answer" --write-out '%{http_code}' "$url")

if [[ $status == 202 ]]; then
	link=$(sed -n 's/^[Ll][Oo][Cc][Aa][Tt][Ii][Oo][Nn]:[[:space:]]*\([^[:space:]]*\)[[:space:]]*$/\1/p' "$dir/response-headers" | head -n 1)
	if [[ -z $link || $link != "$base"/* ]]; then
		cat "$dir/answer"
		echo
		die "queued, but the status link '$link' is not under $base: not followed"
	fi
	if $wait; then
		exec "$here/status.sh" --wait "$link"
	fi
	cat "$dir/answer"
	echo
	printf 'send.sh: queued; status link: %s\n' "$link" >&2
	exit 3
fi
cat "$dir/answer"
echo
[[ $status == 200 ]]
