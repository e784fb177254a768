"""Watching a cluster from outside its workers: a durable event store fed from the event
log, the cluster's state read from it, and Prometheus metrics."""
