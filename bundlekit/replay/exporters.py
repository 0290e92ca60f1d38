"""Choosing the exporter for ``--protocol``.

Each transport is imported only when chosen: grpcio alone costs a noticeable
fraction of a second at start-up, which HTTP users should not pay.
"""

from __future__ import annotations

from bundlekit.replay.interface import Exporter, Protocol, TransportOptions
from bundlekit.replay.route import Route


def create_exporter(route: Route, options: TransportOptions, concurrency: int) -> Exporter:
    """The exporter for ``options.protocol``, following ``route``."""
    if options.protocol is Protocol.GRPC:
        from bundlekit.replay.grpc_exporter import GrpcExporter

        return GrpcExporter(route, options)
    from bundlekit.replay.http_exporter import HttpExporter

    return HttpExporter(route, options, connections=concurrency)
