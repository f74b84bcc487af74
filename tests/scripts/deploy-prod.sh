#!/usr/bin/env bash
# The deploy script from the incident write-up: --set-env-vars replaced every variable,
# and this run left out nothing, but the next one forgot CLERK_SECRET_KEY.
set -euo pipefail

TAG="${1:?usage: deploy-prod.sh TAG}"

echo "Deploying backend-api:$TAG"
gcloud run deploy backend-api \
  --image gcr.io/p/backend-api:$TAG \
  --region us-central1 \
  --project p \
  --set-env-vars "DATABASE_URL=$DATABASE_URL,REDIS_HOST=10.110.183.147,REDIS_PORT=6379,CLERK_SECRET_KEY=$CLERK_SECRET_KEY,EXTENSION_BACKEND_URL=https://ext.example.com" \
  --vpc-connector redis-connector \
  --memory 2Gi \
  --cpu 2 \
  --timeout 600  # ten minutes for the slow report endpoints

gcloud run services describe backend-api --region us-central1 --format 'value(status.url)'
