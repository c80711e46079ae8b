"""Streaming predictions: sources and sinks (Redis Streams, AWS Kinesis), the worker, Lambda."""
