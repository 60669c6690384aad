#!/usr/bin/env bash
# grant-graph-permissions.sh grants the Function App's managed identity the Microsoft Graph
# application permissions entra-revoke needs, with Graph app role assignments (az rest):
#
#   User.RevokeSessions.All  always: POST /users/{id}/revokeSignInSessions
#   User.Read.All            with --with-user-read: user lookups for PROTECTED_USERS/ALLOWED_DOMAINS
#                            across UPN/object-ID forms, and VERIFY_REVOCATION read-backs. A
#                            Microsoft Sentinel playbook sends object IDs, so with UPN-based guard
#                            rails every one of its requests needs a lookup: grant it for Sentinel.
#   AuditLog.Read.All        with --with-sign-in-watch (together with User.Read.All): the sign-in
#                            watch (WATCH_AFTER) reads each revoked user's sign-in logs, filtered
#                            by the user's object ID.
#
# It is idempotent: a permission already granted is reported and left alone. With --dry-run the
# read-only lookups still run (they show what would change) but every change is printed as the
# exact az command instead of being run.
#
# Granting Microsoft Graph application permissions needs the Entra ID role Privileged Role
# Administrator (or Global Administrator); the script says so when the signed-in account lacks it.
set -euo pipefail

readonly GRAPH_APP_ID=00000003-0000-0000-c000-000000000000 # Microsoft Graph, the same in every tenant
readonly prog=grant-graph-permissions.sh

usage() {
	cat <<EOF
usage: $prog (--resource-group RG --name FUNCTION_APP | --principal-id OBJECT_ID)
                [--with-user-read] [--with-sign-in-watch] [--dry-run] [--graph-endpoint URL]

Grants the Function App's managed identity User.RevokeSessions.All on Microsoft Graph
(and User.Read.All with --with-user-read, AuditLog.Read.All and User.Read.All with
--with-sign-in-watch). Run it signed in with az login as a
Privileged Role Administrator or Global Administrator.

  -g, --resource-group RG   resource group of the Function App
  -n, --name NAME           the Function App (its system-assigned identity is used)
      --principal-id ID     object (principal) ID of the identity, instead of -g/-n
      --with-user-read      also grant User.Read.All: needed for VERIFY_REVOCATION and for
                            PROTECTED_USERS/ALLOWED_DOMAINS with Sentinel (object IDs)
      --with-sign-in-watch  also grant AuditLog.Read.All and User.Read.All: needed for WATCH_AFTER
      --dry-run             look up, then print the az calls that would grant; change nothing
      --graph-endpoint URL  Microsoft Graph for sovereign clouds (default https://graph.microsoft.com)
  -h, --help                this help
EOF
}

die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}

usage_error() {
	printf '%s: %s\n' "$prog" "$*" >&2
	usage >&2
	exit 2
}

# quote prints its arguments as one shell command line that can be pasted back into a shell.
quote() {
	local out="" arg
	for arg in "$@"; do
		if [[ $arg =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
			out+="$arg "
		else
			out+="'${arg//\'/\'\\\'\'}' "
		fi
	done
	printf '%s\n' "${out% }"
}

is_guid() {
	[[ $1 =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]]
}

# lacks_rights reports whether an az error says the signed-in account may not do what it asked.
lacks_rights() {
	grep -qiE 'Authorization_RequestDenied|Insufficient privileges|Forbidden' <<<"$1"
}

rights_message() {
	cat >&2 <<EOF
$prog: the signed-in account may not grant Microsoft Graph application permissions.
  Granting them needs the Entra ID role Privileged Role Administrator or Global Administrator
  (Cloud Application Administrator and Application Administrator are not enough for Microsoft
  Graph). Ask an administrator with one of those roles to run:
    $prog --principal-id $principal_id${with_user_read:+ --with-user-read}${with_watch:+ --with-sign-in-watch}
EOF
}

resource_group="" app_name="" principal_id="" with_user_read="" with_watch="" dry_run=false
graph=https://graph.microsoft.com
while (($#)); do
	case $1 in
	-g | --resource-group) (($# >= 2)) || usage_error "$1 needs a value"; resource_group=$2; shift 2 ;;
	-n | --name) (($# >= 2)) || usage_error "$1 needs a value"; app_name=$2; shift 2 ;;
	--principal-id) (($# >= 2)) || usage_error "$1 needs a value"; principal_id=$2; shift 2 ;;
	--with-user-read) with_user_read=1; shift ;;
	--with-sign-in-watch) with_watch=1; shift ;;
	--dry-run) dry_run=true; shift ;;
	--graph-endpoint) (($# >= 2)) || usage_error "$1 needs a value"; graph=${2%/}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage_error "unknown argument: $1" ;;
	esac
done

if [[ -n $principal_id ]]; then
	[[ -z $resource_group && -z $app_name ]] || usage_error "give either --principal-id or --resource-group with --name, not both"
	is_guid "$principal_id" || usage_error "--principal-id must be an object ID (a GUID)"
else
	[[ -n $resource_group && -n $app_name ]] || usage_error "give --resource-group and --name of the Function App, or --principal-id"
fi
[[ $graph =~ ^https://[A-Za-z0-9.-]+$ ]] || usage_error "--graph-endpoint must be https://<host>"

command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed: https://learn.microsoft.com/cli/azure/install-azure-cli"
az account show --only-show-errors --output none >/dev/null 2>&1 ||
	die "not signed in to the Azure CLI: run az login (as a Privileged Role Administrator or Global Administrator)"

# lookup runs a read-only az call and prints its single value. A refusal by Microsoft Graph gets
# the rights message; anything else (Azure Resource Manager included) az's own error.
lookup() {
	local api=$1 what=$2 out err
	shift 2
	err=$(mktemp)
	if ! out=$(az "$@" --only-show-errors --output tsv 2>"$err"); then
		local msg
		msg=$(<"$err")
		rm -f "$err"
		if [[ $api == graph ]] && lacks_rights "$msg"; then
			printf '%s: could not read %s: %s\n' "$prog" "$what" "$msg" >&2
			rights_message
			exit 1
		fi
		die "could not read $what: $msg"
	fi
	rm -f "$err"
	printf '%s' "$out"
}

if [[ -z $principal_id ]]; then
	principal_id=$(lookup arm "the identity of Function App $app_name" \
		functionapp identity show --resource-group "$resource_group" --name "$app_name" --query principalId)
	[[ -n $principal_id ]] || die "Function App $app_name has no system-assigned managed identity: deploy infra/azuredeploy.json first"
	is_guid "$principal_id" || die "unexpected principal ID from az: $principal_id"
fi

graph_sp=$(lookup graph "the Microsoft Graph service principal" \
	rest --method GET --url "$graph/v1.0/servicePrincipals(appId='$GRAPH_APP_ID')?\$select=id" --query id)
is_guid "$graph_sp" || die "unexpected Microsoft Graph service principal ID: $graph_sp"

permissions=(User.RevokeSessions.All)
if [[ -n $with_user_read || -n $with_watch ]]; then
	permissions+=(User.Read.All)
else
	cat >&2 <<EOF
$prog: note: not granting User.Read.All. Without it, a request that names a user by object ID
  (every Microsoft Sentinel playbook request) while PROTECTED_USERS or ALLOWED_DOMAINS are set,
  and VERIFY_REVOCATION, end denied. Run again with --with-user-read if that applies; the
  handler's /api/health says "graph": "missing_permission" when its settings need it.
EOF
fi

if [[ -n $with_watch ]]; then
	permissions+=(AuditLog.Read.All)
fi

for permission in "${permissions[@]}"; do
	role_id=$(lookup graph "the app role $permission" \
		rest --method GET --url "$graph/v1.0/servicePrincipals/$graph_sp?\$select=appRoles" \
		--query "appRoles[?value=='$permission' && contains(allowedMemberTypes, 'Application')].id | [0]")
	is_guid "$role_id" || die "Microsoft Graph has no application permission $permission"

	existing=$(lookup graph "the identity's app role assignments" \
		rest --method GET --url "$graph/v1.0/servicePrincipals/$principal_id/appRoleAssignments" \
		--query "value[?appRoleId=='$role_id' && resourceId=='$graph_sp'].id | [0]")
	if [[ -n $existing ]]; then
		printf '%s: already granted to %s\n' "$permission" "$principal_id"
		continue
	fi

	body=$(printf '{"principalId":"%s","resourceId":"%s","appRoleId":"%s"}' "$principal_id" "$graph_sp" "$role_id")
	grant=(az rest --method POST --url "$graph/v1.0/servicePrincipals/$principal_id/appRoleAssignments"
		--headers Content-Type=application/json --body "$body" --only-show-errors --output none)
	if $dry_run; then
		printf 'dry run: %s\n' "$(quote "${grant[@]}")"
		continue
	fi
	err=$(mktemp)
	if ! "${grant[@]}" 2>"$err"; then
		msg=$(<"$err")
		rm -f "$err"
		if grep -q 'Permission being assigned already exists' <<<"$msg"; then
			printf '%s: already granted to %s\n' "$permission" "$principal_id"
			continue
		fi
		if lacks_rights "$msg"; then
			rights_message
			exit 1
		fi
		die "could not grant $permission: $msg"
	fi
	rm -f "$err"
	printf '%s: granted to %s\n' "$permission" "$principal_id"
done
