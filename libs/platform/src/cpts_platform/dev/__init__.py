"""Development-only helpers: the local Kafka-protocol broker. Nothing here runs in production."""
