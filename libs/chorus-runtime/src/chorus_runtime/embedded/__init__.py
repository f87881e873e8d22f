"""Pieces of the one-machine stack: the embedded Kafka-protocol broker and the stack runner."""
