#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Checks of the monitoring files against promtool and real expositions.

  monitoring.py dashboard-rules DASHBOARD.json OUT.yml
      every panel query of the Grafana dashboard, with Grafana's variables
      given values ($__rate_interval 1m, $__range 1h, $rack .*), as a
      recording rule, for `promtool check rules OUT.yml`
  monitoring.py alerts-tested RULES.yml TESTS.yml
      every alert of RULES has a `promtool test rules` case in TESTS that
      expects it to fire, and TESTS names no alert RULES lacks
  monitoring.py names EXPOSITION... -- DASHBOARD.json RULES.yml
      every metric the queries and alert expressions select is in one of
      the expositions (a histogram's _bucket, _sum and _count included),
      every label a selector matches or a `by (...)` groups on is on that
      metric's samples (job, instance and rack are Prometheus' target
      labels); `up` is Prometheus' own

Prints what is wrong and exits 1; exits 0 when all is well.
"""
import json
import re
import sys

import yaml

# Grafana's variables, as a query in a 1 h dashboard sees them.
GRAFANA_VARS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "rack": ".*",
}
TARGET_LABELS = {"job", "instance", "rack"}
SYNTHETIC = {"up": {"job", "instance", "rack"}}
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk",
                "bottomk", "quantile", "count_values", "group"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = AGGREGATIONS | GROUPING | {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def grafana_expand(expr, where):
    def var(m):
        name = m.group(1) or m.group(2)
        if name not in GRAFANA_VARS:
            raise SystemExit(f"{where}: unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARS[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", var, expr)


def dashboard_exprs(path):
    """(where, expr) for every panel target, variables expanded."""
    with open(path) as f:
        dash = json.load(f)
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                where = f"{path}: panel {p.get('id')} '{p.get('title')}' {t.get('refId')}"
                out.append((where, grafana_expand(t["expr"], where), p.get("id"), t.get("refId")))
    walk(dash.get("panels", []))
    if not out:
        raise SystemExit(f"{path}: no panel queries")
    return out


def alert_rules(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def cmd_dashboard_rules(dashboard, out):
    rules = []
    for where, expr, pid, ref in dashboard_exprs(dashboard):
        rules.append({"record": f"vrio_dashboard:panel_{pid}:{ref}", "expr": expr})
    with open(out, "w") as f:
        f.write(f"# Generated from {dashboard} by tests/ops/monitoring.py.\n")
        yaml.safe_dump({"groups": [{"name": "vrio-dashboard", "rules": rules}]}, f,
                       sort_keys=False, width=1000)
    print(f"{len(rules)} dashboard queries written to {out}")
    return 0


def cmd_alerts_tested(rules_path, tests_path):
    names = {r["alert"] for r in alert_rules(rules_path)}
    with open(tests_path) as f:
        tests = yaml.safe_load(f)
    fired, named = set(), set()
    for t in tests["tests"]:
        for c in t.get("alert_rule_test", []):
            named.add(c["alertname"])
            if c.get("exp_alerts"):
                fired.add(c["alertname"])
    bad = 0
    for n in sorted(names - fired):
        print(f"{tests_path}: no case where alert {n} fires")
        bad = 1
    for n in sorted(named - names):
        print(f"{tests_path}: tests alert {n}, which {rules_path} does not have")
        bad = 1
    if not bad:
        print(f"every alert of {rules_path} ({len(names)}) has a firing case")
    return bad


def parse_exposition(paths):
    """{sample or family name: set of label names on its samples}."""
    labels = {}
    sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s")
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')
    for path in paths:
        with open(path) as f:
            for line in f:
                if line.startswith("# TYPE "):
                    _, _, name, kind = line.split()[:4]
                    names = [name]
                    if kind == "histogram":
                        names += [name + "_bucket", name + "_sum", name + "_count"]
                    for n in names:
                        labels.setdefault(n, set())
                    continue
                if line.startswith("#") or not line.strip():
                    continue
                m = sample.match(line)
                if not m:
                    raise SystemExit(f"{path}: cannot parse sample line {line!r}")
                labels.setdefault(m.group(1), set()).update(label.findall(m.group(3) or ""))
    return labels


def selectors(expr):
    """(metric name or None, [(label, op, value)]) per vector selector, and
    the label names of every grouping clause."""
    sels, groups = [], []
    i, n = 0, len(expr)
    ident = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
    matcher = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')

    def skip_space(j):
        while j < n and expr[j].isspace():
            j += 1
        return j

    def matchers(j):
        """Parses {...} at j; returns (matchers, index after })."""
        out, j = [], j + 1
        while True:
            j = skip_space(j)
            if expr[j] == "}":
                return out, j + 1
            m = matcher.match(expr, j)
            if not m:
                raise SystemExit(f"cannot parse label matchers at {expr[j:j + 30]!r} in {expr!r}")
            out.append((m.group(1), m.group(2), m.group(3)))
            j = m.end()

    while i < n:
        c = expr[i]
        if c == '"':
            i = expr.index('"', i + 1) + 1
        elif c == "[":
            i = expr.index("]", i) + 1
        elif c == "{":
            ms, i = matchers(i)
            sels.append((None, ms))
        elif c.isalpha() or c in "_:":
            m = ident.match(expr, i)
            word, i = m.group(0), m.end()
            j = skip_space(i)
            if word in GROUPING:
                if j < n and expr[j] == "(":
                    k = expr.index(")", j)
                    groups += [w.strip() for w in expr[j + 1:k].split(",") if w.strip()]
                    i = k + 1
                continue
            if word in KEYWORDS or (j < n and expr[j] == "("):
                continue
            ms = []
            if j < n and expr[j] == "{":
                ms, i = matchers(j)
            sels.append((word, ms))
        else:
            i += 1
    return sels, groups


def cmd_names(expositions, dashboard, rules_path):
    have = parse_exposition(expositions)
    have.update({k: set(v) for k, v in SYNTHETIC.items()})
    exprs = [(w, e) for w, e, _, _ in dashboard_exprs(dashboard)]
    exprs += [(f"{rules_path}: alert {r['alert']}", r["expr"]) for r in alert_rules(rules_path)]
    bad, used = 0, set()
    for where, expr in exprs:
        sels, groups = selectors(expr)
        metrics = []
        for name, ms in sels:
            names = [name] if name else []
            for lab, op, val in ms:
                if lab == "__name__":
                    if op == "=":
                        names = [val]
                    elif op == "=~":
                        names = [h for h in have if re.fullmatch(val, h)]
                        if not names:
                            print(f"{where}: no metric matches __name__=~\"{val}\"")
                            bad = 1
            if not names and name is None and not any(l == "__name__" for l, _, _ in ms):
                print(f"{where}: a selector without a metric name: {expr}")
                bad = 1
            for metric in names:
                used.add(metric)
                if metric not in have:
                    print(f"{where}: metric {metric} is in no exposition")
                    bad = 1
                    continue
                metrics.append(metric)
                for lab, _, _ in ms:
                    if lab == "__name__" or lab in TARGET_LABELS:
                        continue
                    if have[metric] and lab not in have[metric]:
                        print(f"{where}: {metric} has no label {lab} (it has: "
                              f"{', '.join(sorted(have[metric])) or 'none'})")
                        bad = 1
        known = set(TARGET_LABELS)
        for m in metrics:
            known |= have[m]
        for lab in groups:
            if lab not in known:
                print(f"{where}: groups by {lab}, a label none of its metrics has")
                bad = 1
    if not bad:
        print(f"{len(exprs)} expressions select {len(used)} metrics, all exported, "
              f"with the labels they use")
    return bad


def main(argv):
    if len(argv) == 3 and argv[0] == "dashboard-rules":
        return cmd_dashboard_rules(argv[1], argv[2])
    if len(argv) == 3 and argv[0] == "alerts-tested":
        return cmd_alerts_tested(argv[1], argv[2])
    if len(argv) >= 5 and argv[0] == "names" and argv[-3] == "--":
        return cmd_names(argv[1:-3], argv[-2], argv[-1])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
