#!/usr/bin/env python3
"""Fetches a Prometheus /metrics page over HTTP and parses it with prometheus_client's parser
for the Prometheus text format (PyPI prometheus-client; scripts/test.sh installs it).

Usage: prom_scrape.py URL. Prints JSON: the status, the Content-Type and every family with its
samples. A page the parser refuses ends the script with a non-zero exit and the parser's error.
"""
import json
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    url = sys.argv[1]
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            status, ctype, body = r.status, r.headers.get("Content-Type"), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        print(json.dumps({"status": e.code, "content_type": e.headers.get("Content-Type"), "families": []}))
        return
    families = [
        {
            "name": f.name,
            "type": f.type,
            "help": f.documentation,
            "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples],
        }
        for f in text_string_to_metric_families(body)
    ]
    print(json.dumps({"status": status, "content_type": ctype, "families": families}))


if __name__ == "__main__":
    main()
