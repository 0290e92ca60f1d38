"""Choosing the exporter for ``--protocol``.

Each transport is imported only when chosen: grpcio alone costs a noticeable
fraction of a second at start-up, which HTTP users should not pay.
"""

from __future__ import annotations

from bundlekit.replay.endpoint import Endpoint
from bundlekit.replay.interface import Exporter, Protocol, TransportOptions


def create_exporter(endpoint: Endpoint, options: TransportOptions, concurrency: int) -> Exporter:
    if options.protocol is Protocol.GRPC:
        from bundlekit.replay.grpc_exporter import GrpcExporter

        return GrpcExporter(endpoint, options)
    from bundlekit.replay.http_exporter import HttpExporter

    return HttpExporter(endpoint, options, connections=concurrency)
