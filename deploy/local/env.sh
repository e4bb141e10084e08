# SDD local stack settings: the one list of names (and defaults) that the scripts, the .NET
# services/tests (Sdd.Configuration.SddSettings) and docker-compose.yml all read.
# Source it; any variable already set in the environment wins.

SDD_ROOT="${SDD_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${SDD_STACK_DIR:=$SDD_ROOT/.stack}"          # data, logs, pid files (git-ignored)

# RabbitMQ (AMQP, management HTTP API, Erlang distribution, epmd)
: "${SDD_RABBITMQ_HOST:=127.0.0.1}"
: "${SDD_RABBITMQ_PORT:=5672}"
: "${SDD_RABBITMQ_MANAGEMENT_PORT:=15672}"
: "${SDD_RABBITMQ_DIST_PORT:=25672}"
: "${SDD_RABBITMQ_EPMD_PORT:=4369}"
: "${SDD_RABBITMQ_USER:=guest}"
: "${SDD_RABBITMQ_PASSWORD:=guest}"
: "${SDD_RABBITMQ_VHOST:=/}"

# PostgreSQL 15 (5433, not 5432, so a system PostgreSQL does not clash)
: "${SDD_POSTGRES_HOST:=127.0.0.1}"
: "${SDD_POSTGRES_PORT:=5433}"
: "${SDD_POSTGRES_USER:=postgres}"
: "${SDD_POSTGRES_PASSWORD:=sdd-local}"
: "${SDD_POSTGRES_DB:=sdd}"

# S3-compatible object storage (s3rver locally, MinIO in docker-compose / production).
# s3rver accepts only the fixed credentials S3RVER/S3RVER.
: "${SDD_S3_ENDPOINT:=http://127.0.0.1:9000}"
: "${SDD_S3_ACCESS_KEY:=S3RVER}"
: "${SDD_S3_SECRET_KEY:=S3RVER}"
: "${SDD_S3_REGION:=us-east-1}"
: "${SDD_S3_BUCKET_DATASETS:=sdd-datasets}"
: "${SDD_S3_BUCKET_MODELS:=sdd-models}"
: "${SDD_S3_BUCKET_JOBS:=sdd-jobs}"

# The local stack's mode: lets Sdd.Ingest start with the well-known admin key sdd-admin-local (refused elsewhere).
# SDD_S3_PUBLIC_ENDPOINT (unset here) is the S3 address clients outside the services' network use, for signed URLs.
: "${SDD_STACK_MODE:=local}"

export SDD_ROOT SDD_STACK_DIR SDD_STACK_MODE \
  SDD_RABBITMQ_HOST SDD_RABBITMQ_PORT SDD_RABBITMQ_MANAGEMENT_PORT SDD_RABBITMQ_DIST_PORT \
  SDD_RABBITMQ_EPMD_PORT SDD_RABBITMQ_USER SDD_RABBITMQ_PASSWORD SDD_RABBITMQ_VHOST \
  SDD_POSTGRES_HOST SDD_POSTGRES_PORT SDD_POSTGRES_USER SDD_POSTGRES_PASSWORD SDD_POSTGRES_DB \
  SDD_S3_ENDPOINT SDD_S3_ACCESS_KEY SDD_S3_SECRET_KEY SDD_S3_REGION \
  SDD_S3_BUCKET_DATASETS SDD_S3_BUCKET_MODELS SDD_S3_BUCKET_JOBS
