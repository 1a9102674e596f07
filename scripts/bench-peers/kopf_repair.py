"""A minimal kopf operator doing the pull-Secret repair: it remembers each
kubetrace-registry Secret it sees and re-creates it on its DELETED event
(on.event: on.delete would wait on a finalizer). Posting off, standalone.
"""
import kopf
from kubernetes import client, config

NAME = "kubetrace-registry"
known = {}
api = None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    global api
    settings.posting.enabled = False
    config.load_kube_config()
    api = client.CoreV1Api()


@kopf.on.event("v1", "secrets", field="metadata.name", value=NAME)
def repair(event, namespace, **_):
    obj = event["object"]
    if event["type"] in ("ADDED", "MODIFIED", None):
        known[namespace] = {"type": obj.get("type"), "data": obj.get("data"),
                            "labels": obj.get("metadata", {}).get("labels")}
    elif event["type"] == "DELETED" and namespace in known:
        k = known[namespace]
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=NAME, namespace=namespace, labels=k["labels"]),
                               type=k["type"], data=k["data"])
        try:
            api.create_namespaced_secret(namespace, body)
        except client.exceptions.ApiException as e:
            if e.status != 409:
                raise
