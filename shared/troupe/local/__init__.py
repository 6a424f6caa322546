"""The embedded runtime behind `troupe up`: a local stand-in for Knative and Kafka."""
