"""What runs on this machine: child processes and how they stop (`processes`), the
embedded Kafka-protocol broker, Tansu (`kafka`), and loopback HTTP servers and ports
(`loopback_http`)."""
