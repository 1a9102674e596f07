"""A minimal kopf operator counting Pod events with on.event (standalone, posting off).

Run: kopf run --standalone --namespace NS kopf_counter.py, with BENCH_EXPECTED set.
Prints one JSON line at the last expected event and exits: events,
resource_version_sum, seconds (first event to last; kopf's start-up excluded).
"""
import json, os, time
import kopf

EXPECTED = int(os.environ["BENCH_EXPECTED"])
state = {"count": 0, "rv_sum": 0, "started": None}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.posting.enabled = False
    settings.watching.server_timeout = 600


@kopf.on.event("v1", "pods")
def count(event, **_):
    if state["started"] is None:
        state["started"] = time.monotonic()
    state["count"] += 1
    state["rv_sum"] += int(event["object"]["metadata"]["resourceVersion"])
    if state["count"] >= EXPECTED:
        print(json.dumps({"events": state["count"], "resource_version_sum": state["rv_sum"],
                          "seconds": time.monotonic() - state["started"]}), flush=True)
        os._exit(0)
