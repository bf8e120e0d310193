#!/usr/bin/env bash
# The example's okteto-pipeline.yaml as plain shell: the baseline shipline's benchmarks
# compare against. One block per pipeline line, same order, same tools.
#
#   COMMIT=<sha> NAMESPACE=<ns> GRAFANA_REMOTE_WRITE_URL=... GRAFANA_USERNAME=... \
#   GRAFANA_API_KEY=... ./deploy.sh
#
# SHIPLINE_REGISTRY (default 127.0.0.1:5000) stands for Okteto's `okteto.dev/` registry;
# KUBECONFIG picks the cluster, as for kubectl. ROLLOUT_TIMEOUT (e.g. 120s), when set,
# bounds each `rollout status` (the pipeline has none: kubectl then waits for the
# Deployment's progress deadline, 10 minutes by default).
set -euo pipefail

: "${COMMIT:?set COMMIT to the commit to deploy (it is the image tag)}"
: "${NAMESPACE:?set NAMESPACE to the namespace to deploy into}"
: "${GRAFANA_REMOTE_WRITE_URL:?set GRAFANA_REMOTE_WRITE_URL (k8s/grafana-agent.yaml needs it)}"
: "${GRAFANA_USERNAME:?set GRAFANA_USERNAME (k8s/grafana-agent.yaml needs it)}"
: "${GRAFANA_API_KEY:?set GRAFANA_API_KEY (k8s/grafana-agent.yaml needs it)}"
export SHIPLINE_REGISTRY="${SHIPLINE_REGISTRY:-127.0.0.1:5000}"
export GRAFANA_REMOTE_WRITE_URL GRAFANA_USERNAME GRAFANA_API_KEY

# Okteto runs the pipeline from the repository root; this folder is that root.
cd "$(dirname "$0")"
image="${SHIPLINE_REGISTRY}/pr12er-server:${COMMIT}"

# okteto build -t okteto.dev/pr12er-server:${OKTETO_GIT_COMMIT} -f ./server/deploy/Dockerfile server
docker build -t "$image" -f ./server/deploy/Dockerfile server
docker push "$image"

# for file in k8s/*.yaml; do envsubst < $file | kubectl apply -f -; done
# Kept as the pipeline has it: the loop's status is its last file's, so a failing file
# in the middle goes unnoticed (errexit does not apply inside the left side of `||`).
for file in k8s/*.yaml; do
  envsubst <"$file" | kubectl apply -n "$NAMESPACE" -f -
done || exit

# kubectl set image deployment server server=okteto.dev/pr12er-server:${OKTETO_GIT_COMMIT}
kubectl set image -n "$NAMESPACE" deployment server "server=$image"

# kubectl rollout restart deployment grafana-agent
kubectl rollout restart -n "$NAMESPACE" deployment grafana-agent

# kubectl rollout status deployment server && ... grafana-agent && ... envoy
status=(kubectl rollout status -n "$NAMESPACE" ${ROLLOUT_TIMEOUT:+"--timeout=$ROLLOUT_TIMEOUT"})
"${status[@]}" deployment server \
  && "${status[@]}" deployment grafana-agent \
  && "${status[@]}" deployment envoy
