#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""hist_p99.py BEFORE AFTER DEVICE: the upper bound, in microseconds, of the
io-server latency bucket (vrio_ioserver_request_latency_seconds) that holds
DEVICE's 99th percentile between two scrapes of its /metrics; nan if the
device did no request in between."""
import re
import sys


def buckets(path, dev):
    pat = re.compile(r'^vrio_ioserver_request_latency_seconds_bucket\{device="%s",le="([^"]+)"\} (\S+)'
                     % re.escape(dev))
    b = {}
    with open(path) as f:
        for line in f:
            m = pat.match(line)
            if m:
                b[float(m.group(1))] = float(m.group(2))
    return b


def main():
    b0, b1 = buckets(sys.argv[1], sys.argv[3]), buckets(sys.argv[2], sys.argv[3])
    les = sorted(b1)
    if not les:
        print("nan")
        return
    total = b1[les[-1]] - b0.get(les[-1], 0)
    for le in les:
        if total and b1[le] - b0.get(le, 0) >= 0.99 * total:
            print("%g" % (le * 1e6))
            return
    print("nan")


main()
