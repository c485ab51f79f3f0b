"""Summarize `rosim bench` JSON lines of several precisions (bench/run.sh).

Prints one line: each precision's batch-32 rate relative to fp32, fp32's
share of the OpenBLAS sgemm limit (at M=4096, and at the batch-32 shape
measured back to back with the run), each precision's share of its own
limit, and each precision's resident memory.

usage: python3 bench/summary.py < lines
"""
import json
import sys

rate = {}
limits = {}
rss = {}
out = {}
for line in sys.stdin:
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if 'limits' in j:
        limits[j['limits']['m']] = j['limits']
    elif j.get('batch') == 32:
        rate[j['precision']] = j
    elif 'rss_mb' in j:
        rss[j['precision']] = j['rss_mb']
if 'fp32' in rate:
    base = rate['fp32']['gflops']
    out['speedup_vs_fp32_batch32'] = {p: round(r['gflops'] / base, 2) for p, r in rate.items()}
    if limits:
        m4096 = limits.get(4096)
        out['fp32_share_of_sgemm'] = {
            'm4096': round(base / m4096['openblas_sgemm_gflops'], 3),
            'batch32_shape': rate['fp32']['fraction_of_limit_at_shape']}
out['share_of_own_limit_batch32'] = {p: r['fraction_of_limit_at_shape'] for p, r in rate.items()}
out['rss_mb'] = rss
print(json.dumps({'summary': out}))
