#!/usr/bin/env python3
"""Print objects of the Helm chart, rendered by Helm itself (helm-python-sdk).

The local environment and the e2e suite apply the chart's own ServiceAccount
and RBAC, so the operator runs with exactly the permissions users install.

    e2e/chart-objects.py [--namespace NS] KIND [KIND ...]
"""
import argparse
import sys
from pathlib import Path

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "switchyard"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespace", default="switchyard-system")
    parser.add_argument("--release", default="switchyard")
    parser.add_argument("kinds", nargs="+")
    args = parser.parse_args()
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values={}, name=args.release, namespace=args.namespace)
    docs = []
    for name, text in sorted(rendered.items()):
        if not name.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("kind") in args.kinds:
                docs.append(doc)
    if not docs:
        print(f"no objects of kinds {args.kinds} in the chart", file=sys.stderr)
        return 1
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
