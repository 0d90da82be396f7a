#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# rules.sh: the monitoring files, without a running rack:
#   1. `promtool check rules` of the alert rules (deploy/prometheus);
#   2. `promtool test rules` of tests/ops/prometheus/vrio-alerts.test.yml:
#      each alert on series that fire and series that must not; and every
#      alert has a case that fires;
#   3. every query of the Grafana dashboard (deploy/grafana) made into a
#      recording rule and checked with `promtool check rules`, so a query
#      that does not parse fails here, not on a screen;
#   4. `promtool check config` of the example Prometheus configuration.
# That every metric they name exists is tests/ops/monitoring.sh's part.
# Skipped without promtool (package prometheus) or python3's yaml module.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

main() {
	local tmp rules=$VRIO_ROOT/deploy/prometheus/vrio-alerts.yml
	local tests=$VRIO_ROOT/tests/ops/prometheus/vrio-alerts.test.yml
	local dash=$VRIO_ROOT/deploy/grafana/vrio-rack.json
	have_cmd promtool || skip "promtool not found (package prometheus)"
	python3 -c 'import yaml' 2>/dev/null || skip "python3 with yaml not found (package python3-yaml)"
	lib_traps
	make_tmpdir tmp

	echo "== promtool check rules ${rules#"$VRIO_ROOT"/}"
	promtool check rules "$rules" || die "the alert rules do not pass promtool check rules"
	echo "== promtool test rules ${tests#"$VRIO_ROOT"/}"
	(cd "$(dirname "$tests")" && promtool test rules "$(basename "$tests")") ||
		die "the alert rules fail their unit tests"
	python3 "$VRIO_ROOT/tests/ops/monitoring.py" alerts-tested "$rules" "$tests" ||
		die "an alert has no test that fires it"
	echo "== the dashboard's queries as rules"
	python3 "$VRIO_ROOT/tests/ops/monitoring.py" dashboard-rules "$dash" "$tmp/dashboard-rules.yml" ||
		die "cannot read the dashboard's queries"
	promtool check rules "$tmp/dashboard-rules.yml" || die "a dashboard query does not parse"
	echo "== promtool check config prometheus.example.yml"
	promtool check config "$VRIO_ROOT/deploy/prometheus/prometheus.example.yml" ||
		die "the example Prometheus configuration does not pass"
	echo "PASS: ops/rules"
}

main "$@"
