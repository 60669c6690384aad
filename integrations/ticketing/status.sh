#!/usr/bin/env bash
# status.sh reads a deferred revocation's status link — the Location / statusUrl entra-revoke
# returns with 202 queued — and, with --wait, polls it until the outcome is final.
#
# usage: status.sh [--wait] https://<app>.azurewebsites.net/api/revoke/status/<handle>
#   --wait          poll until the answer is no longer 202, sleeping Retry-After seconds between
#                   polls (at least 1, at most 300), for at most STATUS_TIMEOUT seconds
#   STATUS_TIMEOUT  optional, default 3600: how long --wait keeps polling
#
# It prints entra-revoke's JSON answer (the last one) and exits
#   0  final, and every user is revoked or dry_run (HTTP 200)
#   1  final, and not every user was revoked (207 partial, 403, 404, 503 failed …), or the link is
#      unknown or expired (404 not_found)
#   2  usage error
#   3  still queued (without --wait, or when STATUS_TIMEOUT ran out)
# The link is its own credential: nothing else is sent with it (no function key, no signature).
# Keep it on the ticket like a secret that lets its holder read this one request's outcome.
set -euo pipefail

die() {
	printf 'status.sh: %s\n' "$*" >&2
	exit 2
}

wait=false
if [[ ${1:-} == --wait ]]; then
	wait=true
	shift
fi
(($# == 1)) || die "usage: status.sh [--wait] STATUS_URL"
url=$1
[[ $url =~ ^https:// || $url =~ ^http://(127\.0\.0\.1|localhost)[:/] ]] || die "the URL must use https"
[[ $url =~ ^[a-z]+://[^?#]+/api/revoke/status/[A-Za-z0-9_-]+$ ]] || die "not an entra-revoke status link: $url"
timeout=${STATUS_TIMEOUT:-3600}
[[ $timeout =~ ^[0-9]+$ ]] || die "STATUS_TIMEOUT must be whole seconds"
command -v curl >/dev/null 2>&1 || die "curl is not installed"

umask 077
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

waited=0
while :; do
	status=$(curl --silent --show-error --proto =https,http --max-time 60 \
		--dump-header "$dir/headers" --output "$dir/answer" --write-out '%{http_code}' "$url")
	if [[ $status != 202 ]]; then
		break
	fi
	# Retry-After in seconds (entra-revoke sends seconds); anything else waits 10 s.
	delay=$(sed -n 's/^[Rr][Ee][Tt][Rr][Yy]-[Aa][Ff][Tt][Ee][Rr]:[[:space:]]*\([0-9][0-9]*\)[[:space:]]*$/\1/p' "$dir/headers" | head -n 1)
	delay=${delay:-10}
	if ((delay < 1)); then
		delay=1
	elif ((delay > 300)); then
		delay=300
	fi
	if ! $wait || ((waited + delay > timeout)); then
		break
	fi
	printf 'status.sh: queued; next poll in %s s\n' "$delay" >&2
	sleep "$delay"
	waited=$((waited + delay))
done

cat "$dir/answer"
echo
case $status in
200) exit 0 ;;
202) exit 3 ;;
*) exit 1 ;;
esac
