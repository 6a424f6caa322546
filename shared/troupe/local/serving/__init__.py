"""Knative Serving, locally: `controller` turns Services into revisions (`revision`),
each a `pool` of function processes (`instance`) behind an activator and a `router`
that splits traffic by percent and tag."""
