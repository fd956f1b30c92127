#!/usr/bin/env bash
# The chart's CI: helm lint and helm template with the default values and with every
# relay/chart/ci/*.yaml, then kubernetes-validate --strict on every rendered manifest.
# Needs the tools from scripts/install-helm-tools.sh; runs offline. K8S_VERSION picks the schemas.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=relay/chart
TOOLS=${TOOLS_DIR:-$PWD/.tools}
HELM=${HELM:-$TOOLS/bin/helm}
KUBERNETES_VALIDATE=${KUBERNETES_VALIDATE:-$TOOLS/venv/bin/kubernetes-validate}
K8S_VERSION=${K8S_VERSION:-1.33.0}
RELEASE=podwatch-relay
NAMESPACE=podwatch
# The one value the chart cannot default: the default-values render supplies an example.
EXAMPLE_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/podwatch-pod-events

for tool in "$HELM" "$KUBERNETES_VALIDATE"; do
  [[ -x "$tool" ]] || { echo "missing $tool: run scripts/install-helm-tools.sh" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Helm keeps no state outside this run (no repositories, no plugins, no cache).
export HELM_CACHE_HOME=$work/helm/cache HELM_CONFIG_HOME=$work/helm/config HELM_DATA_HOME=$work/helm/data

render() { # render NAME [helm args...]
  local name=$1
  shift
  "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$K8S_VERSION" "$@" \
    >"$work/rendered/$name.yaml"
  echo "template ok: $name ($(grep -c '^kind:' "$work/rendered/$name.yaml") objects)"
}
mkdir -p "$work/rendered"

echo "== helm lint ($("$HELM" version --template '{{.Version}}'))"
"$HELM" lint --strict "$CHART" --kube-version "$K8S_VERSION" --set "sqs.queueUrl=$EXAMPLE_QUEUE_URL"
for values in "$CHART"/ci/*.yaml; do
  "$HELM" lint --strict "$CHART" --kube-version "$K8S_VERSION" --values "$values"
done

echo "== helm template"
render default --set "sqs.queueUrl=$EXAMPLE_QUEUE_URL"
for values in "$CHART"/ci/*.yaml; do
  render "ci-$(basename "$values" .yaml)" --values "$values"
done
# Without the queue URL the chart must refuse, and say which value is missing.
if "$HELM" template "$RELEASE" "$CHART" >"$work/no-queue.out" 2>&1; then
  echo "helm template without sqs.queueUrl rendered; it must fail" >&2
  exit 1
fi
grep -q "sqs.queueUrl is required" "$work/no-queue.out" || { cat "$work/no-queue.out" >&2; exit 1; }
echo "template refused without sqs.queueUrl: ok"

echo "== kubernetes-validate -k $K8S_VERSION --strict"
"$KUBERNETES_VALIDATE" -k "$K8S_VERSION" --strict --quiet "$work"/rendered/*.yaml
renders=("$work"/rendered/*.yaml)
echo "validated: ${#renders[@]} renders"
