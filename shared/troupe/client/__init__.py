"""What a client of a running troupe does, for the CLI and the demo alike: post an event
to a Broker ingress (`broker`), read the event log from Kafka (`eventlog`), and rebuild
runs from it (`timeline`). Below both `troupe.cli` and `troupe.demo`, so neither imports
the other."""
