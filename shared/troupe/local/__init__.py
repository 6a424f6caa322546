"""The embedded runtime behind `troupe up`: Knative on one machine, over a real Kafka.

Laid out by Knative component, so that the folders tell the architecture:

- `controlplane/`: the Kubernetes-style API server, the object store and what it keeps on
  disk, patches, the resource kinds and their checks, the manifests, `kubectl` tables.
- `eventing/`: the Broker data plane (`eventing/broker/`, modelled on Knative's Kafka
  broker), PingSource and KafkaSource (`eventing/sources/`), and the controller that
  keeps them in step with the objects.
- `serving/`: revisions, their pools of function processes, the activator and router,
  and the template process that prewarmed instances are forked from.
- `observability/`: Prometheus, its scrape targets, and the runtime's own metrics.
- `host/`: what runs on this machine: child processes, the embedded Kafka (Tansu) and
  loopback HTTP servers.
- `runtime.py` ties them together; `errors.py` is the one root of what can go wrong here.

Functions never import this package (an import-linter contract checks it).
"""
