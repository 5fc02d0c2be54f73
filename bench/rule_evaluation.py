"""How much work the rendered rules are for a Prometheus: evaluate them over synthetic Triton traffic
with the real rule engine (``promtool test rules``) and print wall time per simulated day.

The burn-rate rules read windows up to 3 days, the most expensive queries we render; this gives a
figure to compare when rules change. Run: ``python3 bench/rule_evaluation.py [days] [pods]``
(defaults: 1 day, 4 pods).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the rule-test helpers live in tests/

from tests.helpers import codepilot
from tests.rules_support import Phase, run_rule_tests, triton_series, write_rule_files


def main() -> None:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    pods = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    cp = codepilot(**{"spec.alerts.slo": {"objective": 99.9}, "spec.autoscaling": {"maxReplicas": pods}})
    minutes = days * 24 * 60
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        files = write_rule_files(directory, cp)
        rules = sum(p.read_text().count("- record:") + p.read_text().count("- alert:") for p in files)
        series = []
        for i in range(pods):
            labels = {"namespace": "team-a", "codepilot": "coder", "version": "v1", "pod": f"coder-v1-x-{i}"}
            series += triton_series(labels, [Phase(minutes, error_ratio=0.0005, latency=0.4)])
        # promtool evaluates rules up to the latest eval_time it is asked about.
        last = {"eval_time": f"{minutes}m", "alertname": "CodePilotHighLatency", "exp_alerts": []}
        test = {"interval": "1m", "input_series": series, "alert_rule_test": [last]}
        start = time.perf_counter()
        run_rule_tests(directory, files, [test])
        elapsed = time.perf_counter() - start
    print(f"rules={rules} pods={pods} days={days} evaluations={minutes} (1/min)")
    print(f"promtool wall time: {elapsed:.2f}s, {elapsed / days:.2f}s per simulated day")


if __name__ == "__main__":
    main()
