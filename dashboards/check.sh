#!/usr/bin/env bash
# Checks the monitoring assets without a running proxy: the rule file (promtool check rules),
# its unit tests (promtool test rules), and the dashboard (valid JSON, every panel on the
# ${datasource} variable, every expression valid PromQL). Installs prometheus when promtool is
# missing. tests/observability.rs then runs every expression against a real Prometheus.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v promtool >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
fi
promtool check rules alerts.yml
promtool test rules alerts_test.yml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - egress.json "$work/exprs.yml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
exprs = []
for panel in dashboard["panels"]:
    assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    for target in panel["targets"]:
        assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        expr = target["expr"]
        for var, value in [("$__rate_interval", "1m"), ("$__range", "5m"), ("$__interval", "15s"), ("$instance", ".*")]:
            expr = expr.replace(var, value)
        assert "$" not in expr, expr
        exprs.append(expr)
assert exprs, "no expressions"
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, expr in enumerate(exprs):
        out.write(f"      - record: dashboard:expr{i}\n        expr: {json.dumps(expr)}\n")
print(f"{len(exprs)} dashboard expressions")
PY
promtool check rules "$work/exprs.yml"
