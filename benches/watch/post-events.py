#!/usr/bin/env python3
"""Creates N core/v1 Events in a kube-apiserver, for the watch benchmark.

post-events.py KUBE_URL TOKEN CA_FILE EVENTS.ndjson [N]

Events come from `cargo xtask gen-events` (realistic ones). Fields the API
server sets itself (uid, resourceVersion, creationTimestamp, managedFields)
are removed; every Event goes to namespace `default` (the API server checks
that involvedObject.namespace matches). 16 threads, one keep-alive connection
each; prints how many were created and how long it took.
"""
import http.client
import json
import ssl
import sys
import threading
import time
import urllib.parse


def main():
    url, token, ca, path = sys.argv[1:5]
    limit = int(sys.argv[5]) if len(sys.argv) > 5 else 50_000
    target = urllib.parse.urlparse(url)
    bodies = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            ev = json.loads(line)
            meta = ev.setdefault("metadata", {})
            for k in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "selfLink"):
                meta.pop(k, None)
            meta["namespace"] = "default"
            meta["name"] = f"bench-{i}"
            ev.setdefault("involvedObject", {})["namespace"] = "default"
            bodies.append(json.dumps(ev).encode())
    ctx = ssl.create_default_context(cafile=ca)
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "failed": 0}

    def worker():
        conn = http.client.HTTPSConnection(target.hostname, target.port, context=ctx)
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= len(bodies):
                return
            conn.request("POST", "/api/v1/namespaces/default/events", body=bodies[i],
                         headers={"Authorization": f"Bearer {token}",
                                  "Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            with lock:
                state["ok" if resp.status == 201 else "failed"] += 1

    started = time.time()
    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"created {state['ok']} Events ({state['failed']} failed) in {time.time() - started:.1f} s")
    sys.exit(0 if state["failed"] == 0 else 1)


if __name__ == "__main__":
    main()
