#!/usr/bin/env bash
# Writes deploy/k8s/secrets.env (git-ignored), the credentials kustomization.yaml turns into the sdd-credentials
# Secret, with random passwords and admin key; an existing file is left as it is.
#   deploy/k8s/make-secrets.sh [-o FILE] [KEY=VALUE ...]
# KEY=VALUE sets one key instead of a random value, for servers that already have their credentials, e.g.
#   deploy/k8s/make-secrets.sh SDD_POSTGRES_USER=app SDD_POSTGRES_PASSWORD="$(cat pg-password)"
# SDD_RABBITMQ_MANAGEMENT_ADDRESS=host:port (default rabbitmq.sdd.svc:15672) is where KEDA reaches RabbitMQ's
# management API; SDD_RABBITMQ_MANAGEMENT_URI is made from it, the RabbitMQ user and password, and SDD_RABBITMQ_VHOST.
# The environment is not read: a shell that sourced deploy/local/env.sh holds the local stack's well-known values.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out="$HERE/secrets.env"
if [[ ${1:-} == -o ]]; then out=${2:?-o needs a file}; shift 2; fi

declare -A given=()
for arg in "$@"; do
  [[ $arg == SDD_*=* ]] || { echo "make-secrets: expected SDD_KEY=VALUE, got '$arg'" >&2; exit 2; }
  given[${arg%%=*}]=${arg#*=}
done

if [[ -e $out ]]; then
  echo "make-secrets: $out exists; left as it is (remove it to make new secrets)" >&2
  exit 0
fi

random_hex() {  # $1 bytes of randomness as hex: URL-safe, no quoting needed anywhere
  if command -v openssl >/dev/null; then openssl rand -hex "$1"
  else od -An -tx1 -N "$1" /dev/urandom | tr -d ' \n'; echo; fi
}
value() { if [[ -n ${given[$1]+set} ]]; then printf '%s' "${given[$1]}"; else printf '%s' "$2"; fi; }
urlencode() {  # byte by byte (LC_ALL=C), so UTF-8 characters become their %XX bytes
  local LC_ALL=C s=$1 i c
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in [A-Za-z0-9._~-]) printf '%s' "$c" ;; *) printf '%%%02X' "'$c" ;; esac
  done
}

rabbit_user=$(value SDD_RABBITMQ_USER sdd)
rabbit_password=$(value SDD_RABBITMQ_PASSWORD "$(random_hex 24)")
rabbit_uri="http://$(urlencode "$rabbit_user"):$(urlencode "$rabbit_password")@$(value SDD_RABBITMQ_MANAGEMENT_ADDRESS rabbitmq.sdd.svc:15672)/$(urlencode "$(value SDD_RABBITMQ_VHOST /)")"

umask 077
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
{
  echo "# Made by deploy/k8s/make-secrets.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Keys: secrets.env.example. Keep it out of git."
  echo "SDD_RABBITMQ_USER=$rabbit_user"
  echo "SDD_RABBITMQ_PASSWORD=$rabbit_password"
  echo "SDD_RABBITMQ_MANAGEMENT_URI=$(value SDD_RABBITMQ_MANAGEMENT_URI "$rabbit_uri")"
  echo "SDD_POSTGRES_USER=$(value SDD_POSTGRES_USER sdd)"
  echo "SDD_POSTGRES_PASSWORD=$(value SDD_POSTGRES_PASSWORD "$(random_hex 24)")"
  echo "SDD_S3_ACCESS_KEY=$(value SDD_S3_ACCESS_KEY sddadmin)"
  echo "SDD_S3_SECRET_KEY=$(value SDD_S3_SECRET_KEY "$(random_hex 24)")"
  echo "SDD_ADMIN_KEY=$(value SDD_ADMIN_KEY "$(random_hex 32)")"
} >"$tmp"
for key in "${!given[@]}"; do
  grep -q "^$key=" "$tmp" || [[ $key == SDD_RABBITMQ_MANAGEMENT_ADDRESS || $key == SDD_RABBITMQ_VHOST ]] ||
    { echo "make-secrets: $key is not a key of the Secret (see secrets.env.example)" >&2; exit 2; }
done
mv "$tmp" "$out"
echo "make-secrets: wrote $out (mode 600); create the same users and passwords on PostgreSQL, RabbitMQ and the S3 store" >&2
