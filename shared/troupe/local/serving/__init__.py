"""Knative Serving, locally: `controller` turns Services into revisions (`revision`),
each a `pool` of function processes (`instance`) behind an activator and a `router`
that splits traffic by percent and tag. Instances are forked from a prewarmed `template`
process (`prewarm` is the runtime's side of it), or started afresh without one."""
