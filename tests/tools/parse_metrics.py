"""Parse Prometheus text exposition on stdin with the reference parser
(prometheus_client, Debian's python3-prometheus-client) and print the
samples as JSON: {"name{label=value,...}": value}.  Exits non-zero when the
text does not parse."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ','.join('%s=%s' % kv for kv in sorted(s.labels.items()))
        out['%s{%s}' % (s.name, labels)] = s.value
print(json.dumps(out, sort_keys=True))
