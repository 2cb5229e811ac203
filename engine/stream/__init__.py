"""The stream: Kafka in, stores out. The worker (a faust app), its batch consumer,
the wire codec, topic administration, the event log's id (logid), the archive of
applied events, and reading the log's history (archive, then broker) for replay,
backtests and training."""
