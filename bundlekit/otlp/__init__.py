"""OpenTelemetry protocol knowledge: signals, request types, record statistics."""
