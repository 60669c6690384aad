#!/usr/bin/env bash
# deploy.sh takes a resource group from nothing to a running entra-revoke, and runs again without
# changing what is already right. Everything it needs on a later run it reads back from Azure by
# resource group (the last deployment's parameters and outputs, the Key Vault's secret names, the
# API registration by name): no shell variables, files or sessions carried between runs, so a
# second person or tomorrow's Cloud Shell picks up where the first left off.
#
#   deploy.sh deploy -g RG [-l LOCATION] [options]   create or update, then prove it with a dry run
#   deploy.sh deploy -g RG --go-live --test-user U   turn dry run off and revoke U (a test account)
#   deploy.sh upgrade -g RG --tag vX.Y.Z             new release: template and code, secrets kept
#   deploy.sh allow-caller -g RG --principal-id ID   give a token caller (a Sentinel playbook, a
#                                                    Logic App) the Sessions.Revoke app role
#   deploy.sh sentinel -g RG --workspace WS [--sentinel-group SRG] [--test-user U]
#                                                    the Sentinel playbook (its template, in the
#                                                    workspace's group), and the caller's role for
#                                                    it; with U, the template's disabled test rules
#
# What "deploy" does, each step skipped when already done:
#   1. the resource group (-l on the first run);
#   2. for token callers, the API app registration "entra-revoke-api-<RG>" with the
#      Sessions.Revoke app role, its service principal, assignment required;
#   3. the webhook secret (webhook callers) and the queue secret, generated on the first deployment
#      only: when the Key Vault already holds one it is never generated again, so callers keep
#      working. A vault soft-deleted with its resource group is recovered, secrets included;
#   4. the template (infra/azuredeploy.json) with the last deployment's parameters and the options;
#   5. the Microsoft Graph permissions the settings need, granted to the app's identity before
#      its code runs (or the one command a Privileged Role Administrator must run);
#   6. the release's entra-revoke.zip, checked against SHA256SUMS, unless that version runs;
#   7. /api/health polled until the release answers;
#   8. a signed request (webhook callers): a dry run, or with --go-live the test user's revocation.
set -euo pipefail

readonly prog=deploy.sh
readonly deployment=entra-revoke
readonly repo_url=https://github.com/entra-revoke/entra-revoke
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly here

usage() {
	cat <<EOF
usage: $prog deploy -g RG [-l LOCATION] [--callers webhook|entra|webhook+entra]
                 [--protected-users LIST] [--allowed-domains LIST] [--tag TAG]
                 [--parameters FILE] [--go-live --test-user UPN]
       $prog upgrade -g RG --tag TAG [--parameters FILE]
       $prog allow-caller -g RG --principal-id OBJECT_ID
       $prog sentinel -g RG --workspace WORKSPACE [--sentinel-group SENTINEL_RG] [--test-user UPN]
                 [--playbook NAME]

  -g, --resource-group RG  the resource group that holds (or will hold) entra-revoke
  -l, --location LOC       its region, on the first run (a Flex Consumption region)
      --callers C          webhook (ticketing systems), entra (Logic Apps, Sentinel) or both;
                           default: as deployed, else webhook
      --protected-users L  break-glass accounts, comma-separated (never revoked)
      --allowed-domains L  only UPNs in these domains may be revoked
      --tag TAG            the release to run (default: the checkout's tag)
      --release-url URL    where the release's files are (default: the tag's GitHub release)
      --parameters FILE    more template parameters (a deployment parameter file)
      --go-live            turn dry run off; needs --test-user, whom it then revokes
      --test-user UPN      a test account: revoked with --go-live, else named in the dry run;
                           sentinel: the account the disabled test analytics rule's incident names
      --principal-id ID    allow-caller: the caller's managed identity (object ID)
      --workspace WS       sentinel: the Microsoft Sentinel workspace
      --sentinel-group SRG sentinel: the workspace's resource group, where the playbook goes
                           (default: RG)
      --playbook NAME      sentinel: the playbook (default entra-revoke-incident)
  -h, --help               this help
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

say() { printf '%s: %s\n' "$prog" "$*" >&2; }

is_guid() {
	[[ $1 =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]]
}

# azq runs a read-only az call and prints its value (empty when there is none).
azq() { az "$@" --only-show-errors --output tsv; }

# new_secret prints a new Standard Webhooks secret: 32 random bytes.
new_secret() { printf 'whsec_%s' "$(openssl rand -base64 32)"; }

# new_guid prints a random (version 4) GUID.
new_guid() {
	local h
	h=$(openssl rand -hex 16)
	printf '%s-%s-4%s-%x%s-%s' "${h:0:8}" "${h:8:4}" "${h:13:3}" $((0x${h:16:1} & 0x3 | 0x8)) "${h:17:3}" "${h:20:12}"
}

command=${1:-}
case $command in
deploy | upgrade | allow-caller | sentinel) shift ;;
-h | --help) usage; exit 0 ;;
*) usage_error "first argument: deploy, upgrade, allow-caller or sentinel" ;;
esac

rg="" location="" callers="" protected_users="" protected_set=false allowed_domains="" allowed_set=false
tag="" release_url="" extra_params="" go_live=false test_user="" caller_principal="" workspace="" sentinel_group="" playbook=entra-revoke-incident
while (($#)); do
	case $1 in
	-g | --resource-group) (($# >= 2)) || usage_error "$1 needs a value"; rg=$2; shift 2 ;;
	-l | --location) (($# >= 2)) || usage_error "$1 needs a value"; location=$2; shift 2 ;;
	--callers) (($# >= 2)) || usage_error "$1 needs a value"; callers=$2; shift 2 ;;
	--protected-users) (($# >= 2)) || usage_error "$1 needs a value"; protected_users=$2; protected_set=true; shift 2 ;;
	--allowed-domains) (($# >= 2)) || usage_error "$1 needs a value"; allowed_domains=$2; allowed_set=true; shift 2 ;;
	--tag) (($# >= 2)) || usage_error "$1 needs a value"; tag=$2; shift 2 ;;
	--release-url) (($# >= 2)) || usage_error "$1 needs a value"; release_url=${2%/}; shift 2 ;;
	--parameters) (($# >= 2)) || usage_error "$1 needs a value"; extra_params=$2; shift 2 ;;
	--go-live) go_live=true; shift ;;
	--test-user) (($# >= 2)) || usage_error "$1 needs a value"; test_user=$2; shift 2 ;;
	--principal-id) (($# >= 2)) || usage_error "$1 needs a value"; caller_principal=$2; shift 2 ;;
	--workspace) (($# >= 2)) || usage_error "$1 needs a value"; workspace=$2; shift 2 ;;
	--sentinel-group) (($# >= 2)) || usage_error "$1 needs a value"; sentinel_group=$2; shift 2 ;;
	--playbook) (($# >= 2)) || usage_error "$1 needs a value"; playbook=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage_error "unknown argument: $1" ;;
	esac
done
[[ -n $rg ]] || usage_error "give the resource group: -g RG"
case $callers in "" | webhook | entra | webhook+entra) ;; *) usage_error "--callers: webhook, entra or webhook+entra" ;; esac
! $go_live || [[ -n $test_user ]] || usage_error "--go-live needs --test-user: the account it revokes to prove it"
[[ -z $extra_params || -r $extra_params ]] || usage_error "--parameters: cannot read $extra_params"
[[ $command != allow-caller ]] || is_guid "$caller_principal" || usage_error "allow-caller needs --principal-id OBJECT_ID"
[[ $command != upgrade ]] || [[ -n $tag ]] || usage_error "upgrade needs --tag"
[[ $command != sentinel ]] || [[ -n $workspace ]] || usage_error "sentinel needs --workspace"
[[ $command != sentinel || -z $test_user || $test_user == ?*@?* ]] || usage_error "--test-user: a UPN (name@domain)"

for tool in az curl jq openssl sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (Azure Cloud Shell has every tool this needs)"
done
az account show --only-show-errors --output none >/dev/null 2>&1 || die "not signed in to the Azure CLI: run az login"

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

readonly api_name="entra-revoke-api-$rg"
readonly graph=https://graph.microsoft.com

# api_app prints the API registration's app ID, or nothing when there is none.
api_app() { azq ad app list --display-name "$api_name" --query "[0].appId"; }

# ensure_api creates what is missing of the API registration and prints its app ID.
ensure_api() {
	local app_id sp required
	app_id=$(api_app)
	if [[ -z $app_id ]]; then
		jq -n --arg id "$(new_guid)" '[{id: $id, allowedMemberTypes: ["Application"], displayName: "Revoke sign-in sessions",
			description: "Sign users out of all sessions through entra-revoke", value: "Sessions.Revoke", isEnabled: true}]' >"$work/roles.json"
		app_id=$(azq ad app create --display-name "$api_name" --sign-in-audience AzureADMyOrg --app-roles @"$work/roles.json" --query appId)
		is_guid "$app_id" || die "could not register the API $api_name"
		say "registered the API $api_name ($app_id)"
	fi
	if [[ -z $(azq ad app show --id "$app_id" --query "identifierUris[0]") ]]; then
		az ad app update --id "$app_id" --identifier-uris "api://$app_id" --only-show-errors --output none
	fi
	sp=$(azq ad sp list --filter "appId eq '$app_id'" --query "[0].id")
	if [[ -z $sp ]]; then
		az ad sp create --id "$app_id" --only-show-errors --output none
	fi
	required=$(azq ad sp show --id "$app_id" --query appRoleAssignmentRequired)
	if [[ ${required,,} != true ]]; then
		az ad sp update --id "$app_id" --set appRoleAssignmentRequired=true --only-show-errors --output none
	fi
	printf '%s' "$app_id"
}

# allow_caller gives a token caller's managed identity the Sessions.Revoke app role and the
# function key reader role on the Function App, each once however often it runs.
allow_caller() {
	local principal=$1 app_id sp role existing outputs reader app site
	app_id=$(api_app)
	[[ -n $app_id ]] || die "no API registration $api_name: deploy with --callers entra or webhook+entra first"
	sp=$(azq ad sp list --filter "appId eq '$app_id'" --query "[0].id")
	role=$(azq ad sp show --id "$app_id" --query "appRoles[?value=='Sessions.Revoke'].id | [0]")
	{ is_guid "$sp" && is_guid "$role"; } || die "the API registration $api_name has no service principal or no Sessions.Revoke role: run deploy again"
	existing=$(azq rest --method GET --url "$graph/v1.0/servicePrincipals/$principal/appRoleAssignments" \
		--query "value[?resourceId=='$sp' && appRoleId=='$role'].id | [0]")
	if [[ -n $existing ]]; then
		say "$principal already holds Sessions.Revoke"
	else
		az rest --method POST --url "$graph/v1.0/servicePrincipals/$principal/appRoleAssignments" \
			--headers Content-Type=application/json --only-show-errors --output none \
			--body "$(printf '{"principalId":"%s","resourceId":"%s","appRoleId":"%s"}' "$principal" "$sp" "$role")"
		say "gave $principal the Sessions.Revoke role (a token is valid for up to a day: a caller that already holds one gets the role with its next token)"
	fi
	# The caller reads the revoke function's key at run time (so that a key rotation needs no
	# redeployment): the template's custom role, which allows listKeys and nothing else, on the app.
	outputs=$(az deployment group show -g "$rg" -n "$deployment" --query properties -o json --only-show-errors)
	reader=$(jq -r '.outputs.functionKeyReaderRoleId.value // ""' <<<"$outputs")
	app=$(jq -r '.outputs.functionAppName.value // ""' <<<"$outputs")
	[[ -n $reader && -n $app ]] || die "the deployment in $rg has no function key reader role: run deploy (or upgrade) first"
	site="/subscriptions/$(azq account show --query id)/resourceGroups/$rg/providers/Microsoft.Web/sites/$app"
	if [[ -n $(azq role assignment list --assignee "$principal" --role "$reader" --scope "$site" --query "[0].id") ]]; then
		say "$principal may already read the function key"
	else
		az role assignment create --assignee-object-id "$principal" --assignee-principal-type ServicePrincipal \
			--role "$reader" --scope "$site" --only-show-errors --output none
		say "gave $principal the function key reader role on $app"
	fi
}

if [[ $command == allow-caller ]]; then
	allow_caller "$caller_principal"
	exit 0
fi

if [[ $command == sentinel ]]; then
	# The playbook's template does everything ARM can: the playbook, its Sentinel connection, its
	# roles, and with a test user the two test rules, disabled. What ARM cannot do (the Entra app
	# role) is allow_caller's. The values come from the entra-revoke deployment in RG.
	az deployment group show -g "$rg" -n "$deployment" --query properties -o json --only-show-errors >"$work/last.json" 2>/dev/null ||
		die "nothing deployed in $rg yet: use deploy first"
	app=$(jq -r '.outputs.functionAppName.value // ""' "$work/last.json")
	audience=$(jq -r '.parameters.entraAudience.value // ""' "$work/last.json")
	app_id=$(api_app)
	[[ -n $app && -n $audience && -n $app_id ]] || die "entra-revoke in $rg does not accept Entra ID tokens: deploy -g $rg --callers webhook+entra first"
	# Sentinel runs playbooks through the Azure Security Insights app: its object ID in this tenant.
	sentinel_sp=$(azq ad sp show --id 98785600-1bb7-4fb9-b9fa-19afe2c8a360 --query id 2>/dev/null || true)
	jq -n --arg playbook "$playbook" --arg app "$app" --arg rg "$rg" --arg audience "api://$app_id" --arg ws "$workspace" \
		--arg sp "$sentinel_sp" --arg test "$test_user" '{PlaybookName: {value: $playbook}, FunctionAppName: {value: $app},
		FunctionAppResourceGroup: {value: $rg}, ApiAudience: {value: $audience}, WorkspaceName: {value: $ws},
		SentinelAutomationPrincipalId: {value: $sp}} + (if $test == "" then {} else {TestUserUpn: {value: $test}} end)' >"$work/playbook-parameters.json"
	say "deploying the playbook $playbook to ${sentinel_group:-$rg} (workspace $workspace)"
	az deployment group create -g "${sentinel_group:-$rg}" -n entra-revoke-playbook \
		--template-file "$here/../integrations/sentinel/azuredeploy.json" --parameters @"$work/playbook-parameters.json" \
		--query properties -o json --only-show-errors >"$work/playbook.json"
	principal=$(jq -r '.outputs.playbookPrincipalId.value // ""' "$work/playbook.json")
	is_guid "$principal" || die "the playbook deployment gave no identity"
	allow_caller "$principal"
	[[ -n $sentinel_sp ]] || say "the Azure Security Insights app was not found: give Sentinel permission to run playbooks of ${sentinel_group:-$rg} (Sentinel: Settings, Playbook permissions)"
	if [[ -n $test_user ]]; then
		say "in $workspace, disabled: the analytics rule \"entra-revoke test: an incident naming $test_user\" and an automation rule that runs $playbook for its incidents only."
		say "to test: enable the automation rule, then the analytics rule (Sentinel: Automation; Analytics); an incident follows within minutes; disable both afterwards"
	else
		say "done. Attach the playbook to an automation rule scoped by a condition (docs: integrations/sentinel/README.md)"
	fi
	exit 0
fi

# --- 1. the resource group --------------------------------------------------------------------
if [[ -z $(azq group show --name "$rg" --query name 2>/dev/null || true) ]]; then
	[[ $command == deploy ]] || die "no resource group $rg: use deploy first"
	[[ -n $location ]] || usage_error "resource group $rg does not exist: give -l LOCATION to create it"
	az group create --name "$rg" --location "$location" --only-show-errors --output none
	say "created resource group $rg in $location"
fi

# What the last deployment chose, read back: its parameters (secure ones have no value there)
# and outputs.
az deployment group show -g "$rg" -n "$deployment" --query properties -o json --only-show-errors >"$work/last.json" 2>/dev/null || echo '{}' >"$work/last.json"
first=true
[[ $(jq -r '.outputs.functionAppName.value // ""' "$work/last.json") == "" ]] || first=false
[[ $command != upgrade ]] || ! $first || die "nothing deployed in $rg yet: use deploy"
# (jq's // would take false for missing: hence the explicit null test.)
last() { jq -r --arg n "$1" '.parameters[$n].value | if . == null then "" else tostring end' "$work/last.json"; }
out() { jq -r --arg n "$1" '.outputs[$n].value // ""' "$work/last.json"; }

[[ -n $callers ]] || callers=$(last callers)
[[ -n $callers ]] || callers=webhook
$protected_set || protected_users=$(last protectedUsers)
$allowed_set || allowed_domains=$(last allowedDomains)
dry_run=true
if $go_live; then
	dry_run=false
elif ! $first; then
	[[ $(last dryRun) == false ]] && dry_run=false
fi

# --- 2. the API registration, for token callers -----------------------------------------------
audience=""
if [[ $callers == *entra* ]]; then
	api_id=$(ensure_api)
	audience="api://$api_id,$api_id"
fi

# --- 3. secrets: generated on the first deployment only ---------------------------------------
subscription=$(azq account show --query id)
vault=$(out keyVaultName)
if [[ -z $vault ]]; then
	# No complete deployment yet; a failed one may still have made the vault and its secrets.
	vault=$(azq resource list -g "$rg" --resource-type Microsoft.KeyVault/vaults --query "[0].name" 2>/dev/null || true)
fi
if [[ -z $vault ]]; then
	# A vault soft-deleted with an earlier resource group of this name has the same name (it is
	# derived from the group's ID): recover it, with its secrets, instead of failing on it.
	vault=$(azq keyvault list-deleted --resource-type vault --query "[].[name, properties.vaultId]" |
		awk -v rg="/resourcegroups/${rg,,}/" 'index(tolower($2), rg) { print $1; exit }')
	if [[ -n $vault ]]; then
		say "recovering the soft-deleted Key Vault $vault of resource group $rg (its secrets come back with it)"
		az keyvault recover --name "$vault" --only-show-errors --output none
	fi
fi
# has_secret asks Azure Resource Manager (no Key Vault data access needed) whether a secret exists.
has_secret() {
	[[ -n $vault ]] || return 1
	[[ -n $(azq resource show --ids "/subscriptions/$subscription/resourceGroups/$rg/providers/Microsoft.KeyVault/vaults/$vault/secrets/$1" --query id 2>/dev/null || true) ]]
}
secrets='{}' webhook_secret=""
if [[ $callers != entra ]] && ! has_secret webhook-secrets; then
	[[ $command == deploy ]] || die "the Key Vault has no webhook-secrets: an upgrade never makes a new one (callers would be locked out); see docs/deploy.md"
	webhook_secret=$(new_secret)
	secrets=$(jq --arg v "$webhook_secret" '.webhookSecrets = {value: $v}' <<<"$secrets")
	say "generated the webhook secret (stored in the Key Vault as webhook-secrets)"
fi
if ! has_secret queue-secrets; then
	secrets=$(jq --arg v "$(new_secret)" '.queueSecrets = {value: $v}' <<<"$secrets")
	say "generated the queue secret (stored in the Key Vault as queue-secrets)"
fi
printf '%s' "$secrets" >"$work/secrets.json"

# --- 4. the template --------------------------------------------------------------------------
# The last deployment's parameters that this template still declares, then this run's choices.
jq --slurpfile t "$here/azuredeploy.json" '(.parameters // {}) | with_entries(select(.value.type != "SecureString"
	and ($t[0].parameters[.key] != null)) | {key, value: {value: .value.value}})' "$work/last.json" >"$work/last-parameters.json"
jq -n --arg callers "$callers" --arg audience "$audience" --arg protected "$protected_users" --arg allowed "$allowed_domains" \
	--argjson dry "$dry_run" '{callers: {value: $callers}, entraAudience: {value: $audience}, protectedUsers: {value: $protected},
	allowedDomains: {value: $allowed}, dryRun: {value: $dry}}' >"$work/choices.json"
params=(--parameters @"$work/last-parameters.json")
[[ -z $extra_params ]] || params+=(--parameters @"$extra_params")
params+=(--parameters @"$work/choices.json" --parameters @"$work/secrets.json")
say "deploying the template to $rg (a few minutes)"
az deployment group create -g "$rg" -n "$deployment" --template-file "$here/azuredeploy.json" "${params[@]}" \
	--query properties -o json --only-show-errors >"$work/last.json"
app=$(out functionAppName) principal=$(out principalId) health=$(out healthUrl) revoke_url=$(out revokeUrl)
vault=$(out keyVaultName)
is_guid "$principal" || die "the deployment gave no identity for the Function App"

# --- 5. Microsoft Graph permissions, before the code runs -------------------------------------
grant=("$here/grant-graph-permissions.sh" --principal-id "$principal")
if [[ -n $protected_users$allowed_domains || $(last verifyRevocation) == true ]]; then
	grant+=(--with-user-read) # guard rails and read-backs may need a user lookup
fi
granted=false grant_pending=false
if grant_out=$("${grant[@]}" 2>"$work/grant.err"); then
	printf '%s\n' "$grant_out" >&2
	[[ $grant_out != *": granted to "* ]] || granted=true
else
	cat "$work/grant.err" >&2
	grant_pending=true
	say "carry on; once the command above has been run, run this script again (it restarts the app so that the grant applies)"
fi

# --- 6. the code ------------------------------------------------------------------------------
running=$(curl -fsS --max-time 10 "$health" 2>/dev/null | jq -r '.version // ""' 2>/dev/null || true)
if [[ -z $tag ]]; then
	tag=$(git -C "$here" describe --tags --exact-match 2>/dev/null || true)
	[[ -n $tag || -z $running ]] || tag=$running
fi
[[ -n $tag ]] || die "which release? give --tag (e.g. --tag v1.0.0): $repo_url/releases"
if [[ $running != "$tag" ]]; then
	base=${release_url:-$repo_url/releases/download/$tag}
	(cd "$work" && curl -fsSL --max-time 300 -o entra-revoke.zip "$base/entra-revoke.zip" && curl -fsSL --max-time 60 -o SHA256SUMS "$base/SHA256SUMS") ||
		die "could not download the release $tag from $base"
	grep -Eq ' \*?entra-revoke\.zip$' "$work/SHA256SUMS" || die "SHA256SUMS of $tag does not list entra-revoke.zip"
	(cd "$work" && sha256sum --ignore-missing --quiet -c SHA256SUMS) || die "entra-revoke.zip does not match SHA256SUMS: not deployed"
	say "deploying $tag to $app"
	az functionapp deployment source config-zip -g "$rg" -n "$app" --src "$work/entra-revoke.zip" --only-show-errors --output none
elif $granted; then
	say "restarting $app so that it asks for a token with the new permissions"
	az functionapp restart -g "$rg" -n "$app" --only-show-errors --output none
fi

# --- 7. health --------------------------------------------------------------------------------
poll=${DEPLOY_POLL_SECONDS:-5}
answer=""
for ((i = 0; i < 60; i++)); do
	answer=$(curl -fsS --max-time 10 "$health" 2>/dev/null || true)
	if [[ $(jq -r '.status + " " + .version' <<<"$answer" 2>/dev/null) == "ok $tag" ]]; then
		break
	fi
	answer=""
	sleep "$poll"
done
[[ -n $answer ]] || die "$health did not answer ok with version $tag within $((60 * poll)) seconds: docs/troubleshooting.md"
say "health: $answer"
say "app $app, revoke URL $revoke_url, Key Vault $vault (secrets webhook-secrets, queue-secrets)"
if [[ $callers == *entra* ]]; then
	say "Sentinel playbook: $prog sentinel -g $rg --workspace <workspace> --sentinel-group <its resource group> --test-user <a test account>"
fi
if [[ $(jq -r .graph <<<"$answer") != ok ]]; then
	say "graph is not ok yet: a new grant reaches the app with its next token (a restart asks for one at once)"
fi

# --- 8. a signed request ----------------------------------------------------------------------
if [[ $callers == entra ]]; then
	say "done. Callers use Entra tokens: give each one the role with: $prog allow-caller -g $rg --principal-id <its identity>"
	exit 0
fi
if [[ -z $webhook_secret ]]; then
	webhook_secret=$(azq keyvault secret show --vault-name "$vault" --name webhook-secrets --query value 2>/dev/null | cut -d, -f1 || true)
fi
if [[ -z $webhook_secret ]]; then
	say "done, without a signed test: reading the webhook secret needs Key Vault Secrets User on $vault"
	exit 0
fi
key=$(azq functionapp function keys list -g "$rg" -n "$app" --function-name revoke --query default)
[[ -n $test_user ]] || test_user=$(azq ad signed-in-user show --query userPrincipalName 2>/dev/null || true)
[[ -n $test_user ]] || die "no user to name in the test request: give --test-user"
if ! $go_live; then
	body=$(jq -cn --arg u "$test_user" '{upn: $u, ticket: "deploy.sh", reason: "deployment check", dryRun: true}')
	want=dry_run
else
	body=$(jq -cn --arg u "$test_user" '{upn: $u, ticket: "deploy.sh", reason: "going live: test revocation"}')
	want=revoked
fi
# An instance that has not yet restarted with the new settings answers dry_run, which is never
# replayed: the same id is simply sent again.
id="msg_deploy_$(date +%s)"
for ((i = 0; i < 12; i++)); do
	got=$(WEBHOOK_SECRET=$webhook_secret FUNCTION_KEY=$key WEBHOOK_ID=$id "$here/../integrations/ticketing/send.sh" "$revoke_url" <<<"$body" || true)
	status=$(jq -r '.results[0].status // .error.code // "no answer"' <<<"$got" 2>/dev/null || true)
	[[ -n $status ]] || status="no answer"
	[[ $status != "$want" && $status == dry_run ]] || break
	sleep "$poll"
done
say "test request for $test_user: $status"
[[ $status == "$want" ]] || die "the test request answered $status, not $want: $got"
if $go_live; then
	say "live: $test_user was signed out everywhere. Connect callers: docs/deploy.md"
else
	say "done, in dry run. Connect callers (docs/deploy.md), then go live: $prog deploy -g $rg --go-live --test-user <a test account>"
fi
! $grant_pending || die "the Microsoft Graph permissions are still to be granted (the command above)"
