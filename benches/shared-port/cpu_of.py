"""Prints the CPU-ms per stream-second of a castgate-load JSON report (the first such field)."""
import json
import sys


def find(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "cpu_ms_per_stream_second" and v is not None:
                return v
            r = find(v)
            if r is not None:
                return r
    elif isinstance(o, list):
        for v in o:
            r = find(v)
            if r is not None:
                return r
    return None


print("%.2f" % find(json.load(open(sys.argv[1]))))
