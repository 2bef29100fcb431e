"""create_app(): the Falcon application and every route, in one table."""

from __future__ import annotations

import falcon

from countdb.api import errors
from countdb.api.auth import AccessControl, route_scopes
from countdb.api.collectors import StorageCollector
from countdb.api.internal_auth import InternalAuth
from countdb.api.middleware import MinorityNotice, RequestObserver
from countdb.api.openapi import OpenApiResource
from countdb.api.resources.console import ConsoleResource
from countdb.api.resources.discovery import SeriesResource, TagsResource, TagValuesResource
from countdb.api.resources.health import HealthResource, ReadyResource
from countdb.api.resources.influx import LineProtocolResource
from countdb.api.resources.insert import InsertResource
from countdb.api.resources.internal import (CellResource, ClusterStatusResource, DigestResource, HandoffResource,
                                            HeartbeatResource, HintResource, LeaveResource, PeerDeleteResource,
                                            PeerPointsResource, PeerSqlResource, PeerWriteResource, RepairResource,
                                            ReplicateResource, SharedSeries)
from countdb.api.resources.metrics import MetricsResource
from countdb.api.resources.node_status import NodeStatusResource
from countdb.api.resources.prometheus import RemoteReadResource, RemoteWriteResource
from countdb.api.resources.prometheus_query import (PromBuildInfoResource, PromLabelsResource,
                                                    PromLabelValuesResource, PromMetadataResource,
                                                    PromQueryRangeResource, PromQueryResource, PromSeriesResource)
from countdb.api.resources.query import (AggregateQueryResource, GroupedAggregateQueryResource,
                                         MatchingRangeQueryResource, OwnerAnswerResource, RangeQueryResource)
from countdb.api.resources.series import SeriesDeleteResource
from countdb.api.resources.sql import SqlQueryResource
from countdb.api.resources.storage import StorageResource
from countdb.api.services import Services
from countdb.storage.compact import Compactor


INTERNAL_MAX_BODY_BYTES = 256 * 1024 * 1024  # a forwarded part or a pushed segment, from an authenticated node


def create_app(services: Services) -> falcon.App:
    settings, cluster = services.settings, services.cluster
    middleware = [RequestObserver()]
    if settings.auth_required:  # NOTE: internal routes are left to InternalAuth (api/auth.py route_scopes)
        middleware.append(AccessControl(services.tokens, route_scopes(settings.metrics_auth)))
    if cluster is not None:
        middleware += [InternalAuth(cluster.verifier, max(INTERNAL_MAX_BODY_BYTES, 4 * settings.max_body_bytes)),
                       MinorityNotice(cluster.membership)]
    app = falcon.App(media_type=falcon.MEDIA_JSON, middleware=middleware)
    app.req_options.auto_parse_form_urlencoded = False
    app.req_options.strip_url_path_trailing_slash = False
    errors.register(app)
    writer, limits, reads = services.sink, (settings.max_body_bytes, settings.max_points_per_request), services.reads
    console = ConsoleResource()
    routes = [
        ("/insert", InsertResource(writer, *limits)),
        ("/write", LineProtocolResource(writer, "v1", *limits)),
        ("/api/v2/write", LineProtocolResource(writer, "v2", *limits)),
        ("/api/v3/write_lp", LineProtocolResource(writer, "v3", *limits)),
        ("/api/v1/write", RemoteWriteResource(writer, *limits)),
        ("/api/v1/read", RemoteReadResource(services.engine, reads, settings.max_body_bytes, settings.query_max_series)),
        ("/api/v1/query", PromQueryResource(services.engine, reads, settings.query_max_series)),
        ("/api/v1/query_range", PromQueryRangeResource(services.engine, reads, settings.query_max_series)),
        ("/api/v1/series", PromSeriesResource(services.engine, reads, settings.query_max_series)),
        ("/api/v1/labels", PromLabelsResource(services.engine, reads, settings.query_max_series)),
        ("/api/v1/label/{name}/values", PromLabelValuesResource(services.engine, reads, settings.query_max_series)),
        ("/api/v1/metadata", PromMetadataResource()),
        ("/api/v1/status/buildinfo", PromBuildInfoResource()),
        ("/query/range/{series:path}", RangeQueryResource(services.engine, reads)),
        ("/query/aggregated/{series:path}", AggregateQueryResource(services.engine, reads)),
        ("/query/sql", SqlQueryResource(services.sql)),
        ("/series/{series:path}", SeriesDeleteResource(services.deleter)),
        ("/query/range", MatchingRangeQueryResource(services.engine, reads, settings.query_max_series)),
        ("/query/aggregated", GroupedAggregateQueryResource(services.engine, reads, settings.query_max_series)),
        ("/series", SeriesResource(services.engine, reads)),
        ("/tags", TagsResource(services.engine, reads)),
        ("/tags/{key}/values", TagValuesResource(services.engine, reads)),
        ("/health", HealthResource(services)),
        ("/ready", ReadyResource(services)),
        ("/metrics", MetricsResource(StorageCollector(services.datadir))),
        ("/storage", StorageResource(services.datadir)),
        ("/status", NodeStatusResource(services)),
        ("/", console),
        ("/console/{path:path}", console),
        ("/openapi.json", OpenApiResource()),  # describes every route above: api/openapi.py PATHS
    ]
    if cluster is not None:
        shared = SharedSeries(services.engine, cluster)
        routes += [  # internal: signed by a node sharing CLUSTER_SECRET (InternalAuth)
            ("/cluster/heartbeat", HeartbeatResource(cluster)),
            ("/cluster/status", ClusterStatusResource(cluster)),
            ("/cluster/write", PeerWriteResource(services.writer, cluster)),
            ("/cluster/hint", HintResource(cluster)),
            ("/cluster/delete", PeerDeleteResource(cluster)),
            ("/cluster/points", PeerPointsResource(services.engine, cluster)),
            ("/cluster/answer/{kind}", OwnerAnswerResource(services.engine)),
            ("/cluster/sql", PeerSqlResource(services.engine, services.sql, cluster)),
            ("/cluster/digest", DigestResource(services.engine, shared)),
            ("/cluster/cell", CellResource(services.engine, shared)),
            ("/replicate", ReplicateResource(services.publisher, cluster)),
            ("/cluster/handoff", HandoffResource(services.engine, cluster, lambda: Compactor(
                services.datadir, settings.retention_days, settings.retired_block_grace_seconds))),
            ("/cluster/leave", LeaveResource(cluster)),
            ("/cluster/repair", RepairResource(cluster.repair)),
        ]
    for template, resource in routes:
        app.add_route(template, resource)
    return app
