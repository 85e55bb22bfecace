#!/bin/sh
# Downloads Istio's published Grafana dashboards and binds their ${DS_PROMETHEUS} input to the
# provisioned Prometheus data source (uid "prometheus"). Fails loudly when one cannot be fetched.
set -eu
for entry in 7639:istio-mesh 7636:istio-service 7630:istio-workload; do
  id=${entry%%:*}
  name=${entry#*:}
  echo "fetching grafana.com dashboard $id ($name)"
  curl -fsSL --retry 3 "https://grafana.com/api/dashboards/$id/revisions/latest/download" \
    | sed 's/\${DS_PROMETHEUS}/prometheus/g' > "/dashboards/$name.json"
done
echo "dashboards ready"
