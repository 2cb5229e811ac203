"""The stream: Kafka in, stores out. The worker (a faust app), its batch consumer,
the wire codec, topic administration, and reading the topic's history for replay,
backtests and training."""
