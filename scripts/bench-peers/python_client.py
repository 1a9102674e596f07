"""The official Python client consuming a watch, as its docs show (models and all).

Prints one JSON line: events, resource_version_sum, seconds (first request to last event).
"""
import json, sys, time
from kubernetes import client, config, watch

kubeconfig, namespace, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
config.load_kube_config(config_file=kubeconfig)
v1 = client.CoreV1Api()
count, rv_sum = 0, 0
started = time.monotonic()
w = watch.Watch()
for event in w.stream(v1.list_namespaced_pod, namespace, resource_version="1", timeout_seconds=600):
    count += 1
    rv_sum += int(event["object"].metadata.resource_version)
    if count >= expected:
        w.stop()
        break
print(json.dumps({"events": count, "resource_version_sum": rv_sum, "seconds": time.monotonic() - started}), flush=True)
