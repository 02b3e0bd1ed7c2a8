"""Prints the analysis evidence kept in a Rollout's status.analysis (JSON on stdin)."""
import json
import math
import sys

raw = sys.stdin.read().strip()
if raw:
    for name, metric in json.loads(raw).get("metrics", {}).items():
        seq = metric.get("judge", {}).get("sequential", {})
        requests = seq.get("requests", {})
        tests = seq.get("tests") or [{}]
        regression = math.exp(min(seq.get("peakRegressionLogE", 0.0), 700.0))
        non_inferior = math.exp(min(tests[0].get("nonInferiority", {}).get("peakLogE", 0.0), 700.0))
        print(
            f"  evidence:  {name}: {metric.get('verdict')}; compared {requests.get('canary', 0):.0f} canary"
            f" with {requests.get('stable', 0):.0f} stable requests; e-value for a regression {regression:.3g},"
            f" for non-inferiority {non_inferior:.3g} (conclusive at 1/alpha = 20)"
        )
