"""troupe: an ML lifecycle choreographed as Knative services reacting to CloudEvents."""
