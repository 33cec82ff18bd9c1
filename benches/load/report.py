"""Summarizes results.tsv: the median of the rounds per configuration, with ratios to nginx."""
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
for line in open(sys.argv[1]):
    label, rps, p50, p99, _ = line.rstrip("\n").split("\t")
    runs[label].append((float(rps), float(p50), float(p99)))

def median(label):
    rows = runs[label]
    return tuple(statistics.median(column) for column in zip(*rows))

print(f"{'workers':<8}{'target':<12}{'kind':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'req/s ÷ nginx':>15}{'p99 ÷ nginx':>13}{'req/s ÷ haproxy':>17}")
for label in sorted(runs, key=lambda l: (l.split("|")[0], ["upstream", "nginx", "haproxy", "portcullis"].index(l.split("|")[1]), l.split("|")[2])):
    workers, target, kind = label.split("|")
    rps, p50, p99 = median(label)
    nginx = runs.get(f"{workers}|nginx|{kind}") and median(f"{workers}|nginx|{kind}")
    haproxy = runs.get(f"{workers}|haproxy|{kind}") and median(f"{workers}|haproxy|{kind}")
    ratio = f"{rps / nginx[0]:.2f}" if nginx else "-"
    p99_ratio = f"{p99 / nginx[2]:.2f}" if nginx else "-"
    vs_haproxy = f"{rps / haproxy[0]:.2f}" if haproxy else "-"
    print(f"{workers.split('=')[1]:<8}{target:<12}{kind:<10}{rps:>10.0f}{p50:>9.3f}{p99:>9.3f}{ratio:>15}{p99_ratio:>13}{vs_haproxy:>17}")
