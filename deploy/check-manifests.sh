#!/usr/bin/env bash
# Offline checks of the deployment files, no cluster and no Docker engine needed (./sdd test runs it as one test):
#  - deploy/k8s: make-secrets.sh writes a secrets.env with the keys of secrets.env.example; `kubectl kustomize`
#    renders the kustomization with it (in a temporary copy); every rendered object is validated against its JSON
#    schema (kubernetes-models: Kubernetes' OpenAPI; @kubernetes-models/keda: KEDA's CRDs), checked for unknown
#    fields (the same models' TypeScript types) and for references that point at nothing (check-manifests.mjs).
#  - docker-compose.yml and docker-compose.gpu.yml: the compose-spec JSON schema and dclint's rules for mistakes
#    (local/dclint.json: ordering and quoting style rules off; build + image on) and check-manifests.mjs (every
#    published port on 127.0.0.1, no secret with a default).
# Installs what it lacks: node/npm and kubectl (Debian's kubernetes-client) with apt, the node tools with npm ci
# into deploy/local/node_modules (exact versions in deploy/local/package.json). Exits 1 on any problem.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LOCAL="$HERE/local"
export NO_UPDATE_NOTIFIER=1 npm_config_update_notifier=false npm_config_fund=false  # nothing leaves the machine

log() { printf '[manifests] %s\n' "$*"; }

# --- tools ---------------------------------------------------------------------------------------
pkgs=()
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
# Debian's kubectl is 1.20 (kustomize v2): kustomization.yaml keeps to what it reads too.
command -v kubectl >/dev/null || pkgs+=(kubernetes-client)
if ((${#pkgs[@]})); then
  log "installing ${pkgs[*]} (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
need=(dclint/bin/dclint.cjs kubernetes-models/package.json @kubernetes-models/keda/package.json typescript/package.json yaml/package.json)
for f in "${need[@]}"; do
  if [[ ! -f $LOCAL/node_modules/$f || $LOCAL/package-lock.json -nt $LOCAL/node_modules/.package-lock.json ]]; then
    log "installing the node tools (npm ci in deploy/local)"
    (cd "$LOCAL" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    node "$LOCAL/patch-s3rver.js"  # npm ci put back an unpatched s3rver; the stack needs the patched one
    break
  fi
done

# --- checks --------------------------------------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=()
step() {  # step NAME COMMAND...: runs it, prints its output indented when it fails
  local name=$1; shift
  if "$@" >"$tmp/out" 2>&1; then
    log "ok: $name$(tail -n1 "$tmp/out" | sed -n 's/^\(.\{1,100\}\)$/ (\1)/p')"
  else
    failed+=("$name"); log "FAIL: $name"; sed 's/^/    /' "$tmp/out"
  fi
}

keys() { sed -n 's/^\(SDD_[A-Z0-9_]*\)=.*/\1/p' "$1" | sort; }
secrets_match_example() {
  [[ $(keys "$ROOT/deploy/k8s/secrets.env.example") == "$(keys "$tmp/k8s/secrets.env")" ]] ||
    { diff <(keys "$ROOT/deploy/k8s/secrets.env.example") <(keys "$tmp/k8s/secrets.env"); return 1; }
  echo "same keys as secrets.env.example"
}
secrets_ignored() {  # a secrets.env must never be committed
  if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$ROOT" check-ignore -q deploy/k8s/secrets.env || { echo "deploy/k8s/secrets.env is not git-ignored"; return 1; }
    [[ -z $(git -C "$ROOT" ls-files deploy/k8s/secrets.env) ]] || { echo "deploy/k8s/secrets.env is committed"; return 1; }
  fi
  echo "secrets.env git-ignored"
}

# Rendered from a copy with a fresh secrets.env (random values): never from the operator's own.
mkdir -p "$tmp/k8s"
cp -r "$ROOT/deploy/k8s/." "$tmp/k8s/"
rm -f "$tmp/k8s/secrets.env"
step "make-secrets.sh" "$ROOT/deploy/k8s/make-secrets.sh" -o "$tmp/k8s/secrets.env"
step "secrets.env keys" secrets_match_example
step "secrets.env ignored" secrets_ignored
step "kubectl kustomize ($(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p;s/^Client Version: //p' | paste -sd/ -))" \
  sh -c 'kubectl kustomize "$1" >"$2"' - "$tmp/k8s" "$tmp/rendered.yaml"
if [[ -s $tmp/rendered.yaml ]]; then
  step "k8s schemas, fields, references" node "$LOCAL/check-manifests.mjs" k8s "$tmp/rendered.yaml"
else
  failed+=("k8s schemas (nothing rendered)"); log "FAIL: k8s schemas: nothing rendered to check"
fi

compose=("$ROOT/docker-compose.yml" "$ROOT/docker-compose.gpu.yml")
step "compose schema + dclint" node "$LOCAL/node_modules/dclint/bin/dclint.cjs" --config "$LOCAL/dclint.json" \
  --max-warnings 0 --no-color "${compose[@]}"
step "compose ports and secrets" node "$LOCAL/check-manifests.mjs" compose "${compose[@]}"

if ((${#failed[@]})); then
  log "${#failed[@]} failed: $(printf '%s; ' "${failed[@]}" | sed 's/; $//')"
  exit 1
fi
log "all passed"
