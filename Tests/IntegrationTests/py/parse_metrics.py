"""Parses Prometheus text (stdin) with prometheus_client's parser and prints the families as JSON.

Independent of evnode's own writer: the test asserts on what this parser understood. A text the
parser rejects makes this script exit non-zero with the parser's error.
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> None:
    text = sys.stdin.read()
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = {
            "type": family.type,
            "help": family.documentation,
            "samples": [
                {"name": s.name, "labels": dict(s.labels), "value": s.value} for s in family.samples
            ],
        }
    json.dump(families, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
