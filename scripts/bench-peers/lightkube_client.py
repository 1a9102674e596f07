"""lightkube (msgspec-based) consuming the same watch.

Prints one JSON line: events, resource_version_sum, seconds (first request to last event).
"""
import json, sys, time
from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Pod

kubeconfig, namespace, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = Client(config=KubeConfig.from_file(kubeconfig))
count, rv_sum = 0, 0
started = time.monotonic()
for op, pod in client.watch(Pod, namespace=namespace, resource_version="1"):
    count += 1
    rv_sum += int(pod.metadata.resourceVersion)
    if count >= expected:
        break
print(json.dumps({"events": count, "resource_version_sum": rv_sum, "seconds": time.monotonic() - started}), flush=True)
