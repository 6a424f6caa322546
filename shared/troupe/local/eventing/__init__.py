"""Knative Eventing, locally: the Broker data plane and the sources.

`broker/` is the data plane, modelled on Knative's Kafka broker (its `__init__` maps an
event's path through it). `sources/` runs PingSources and KafkaSources. `controller`
follows the control plane's Brokers and Triggers and reports their status.
"""
