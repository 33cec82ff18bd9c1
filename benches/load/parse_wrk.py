"""Reads wrk --latency output on stdin; prints label, req/s, p50 ms, p99 ms, non-2xx."""
import re
import sys

label = sys.argv[1]
text = sys.stdin.read()

def millis(value):
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = millis(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = millis(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{label}\t{rps:.0f}\t{p50:.3f}\t{p99:.3f}\t{errors.group(1) if errors else 0}")
