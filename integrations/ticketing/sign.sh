#!/usr/bin/env bash
# sign.sh prints the three Standard Webhooks headers that authenticate a request body to
# entra-revoke, using only bash and openssl (for systems that cannot run the handler's own
# `handler sign`):
#
#   webhook-id: msg_…
#   webhook-timestamp: <Unix seconds>
#   webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">
#
# usage: WEBHOOK_SECRET=whsec_… sign.sh < body.json
#   WEBHOOK_SECRET     the secret (one entry of the Function App's WEBHOOK_SECRETS); required
#   WEBHOOK_ID         optional id; keep the same id when retrying the same request, so that the
#                      handler replays its first answer instead of revoking twice
#   WEBHOOK_TIMESTAMP  optional Unix time (default now); the handler allows 5 minutes of skew
#
# The body is signed byte for byte as read: send exactly the same bytes (curl --data-binary).
#
# The HMAC is computed here from its definition (RFC 2104) with openssl dgst, rather than with
# `openssl dgst -hmac KEY`, so that the key never appears on a command line, where other users
# of the machine could read it (ps, /proc/<pid>/cmdline). It only travels through pipes.
set -euo pipefail

die() {
	printf 'sign.sh: %s\n' "$*" >&2
	exit 2
}

command -v openssl >/dev/null 2>&1 || die "openssl is not installed"

secret=${WEBHOOK_SECRET:-}
[[ -n $secret ]] || die "set WEBHOOK_SECRET to the signing secret (whsec_…)"
key_b64=${secret#whsec_}
[[ $key_b64 != "$secret" ]] || die "WEBHOOK_SECRET must start with whsec_"
[[ $key_b64 =~ ^[A-Za-z0-9+/]+={0,2}$ && $((${#key_b64} % 4)) -eq 0 ]] || die "WEBHOOK_SECRET is not whsec_ followed by base64"

id=${WEBHOOK_ID:-msg_$(openssl rand -hex 16)}
[[ $id =~ ^[!-~]{1,256}$ ]] || die "WEBHOOK_ID must be 1-256 printable ASCII characters without spaces"
timestamp=${WEBHOOK_TIMESTAMP:-$(date +%s)}
[[ $timestamp =~ ^[0-9]+$ ]] || die "WEBHOOK_TIMESTAMP must be Unix seconds"

# hex prints stdin's bytes as lowercase hex, two digits per byte.
hex() { od -An -v -tx1 | tr -d ' \n'; }

# unhex writes the bytes of a hex string. Everything here is a bash builtin: no other process
# sees the bytes as an argument.
unhex() {
	local h=$1 escaped="" i
	for ((i = 0; i < ${#h}; i += 2)); do
		escaped+="\\x${h:i:2}"
	done
	printf '%b' "$escaped"
}

key_hex=$(printf '%s' "$key_b64" | openssl base64 -d -A | hex)
[[ -n $key_hex ]] || die "WEBHOOK_SECRET holds an empty key"

# HMAC-SHA256 (RFC 2104): a key longer than SHA-256's 64-byte block is first replaced by its
# hash; the key is then padded with zero bytes to 64 bytes and XORed with ipad and opad.
if ((${#key_hex} > 128)); then
	key_hex=$(unhex "$key_hex" | openssl dgst -sha256 -binary | hex)
fi
ipad="" opad=""
for ((i = 0; i < 64; i++)); do
	pair=${key_hex:2*i:2}
	byte=$((16#${pair:-00}))
	printf -v ipad '%s%02x' "$ipad" $((byte ^ 0x36))
	printf -v opad '%s%02x' "$opad" $((byte ^ 0x5c))
done

inner=$(mktemp)
trap 'rm -f "$inner"' EXIT
# The inner hash covers "{id}.{timestamp}." and then the body exactly as it arrives on stdin.
{ unhex "$ipad"; printf '%s.%s.' "$id" "$timestamp"; cat; } | openssl dgst -sha256 -binary >"$inner"
signature=$({ unhex "$opad"; cat "$inner"; } | openssl dgst -sha256 -binary | openssl base64 -A)

printf 'webhook-id: %s\nwebhook-timestamp: %s\nwebhook-signature: v1,%s\n' "$id" "$timestamp" "$signature"
