"""create_app(): the Falcon application and every route, in one table."""

from __future__ import annotations

import falcon

from countdb.api import errors
from countdb.api.auth import AccessControl, route_scopes
from countdb.api.collectors import StorageCollector
from countdb.api.middleware import RequestObserver
from countdb.api.resources.discovery import SeriesResource, TagsResource, TagValuesResource
from countdb.api.resources.health import HealthResource, ReadyResource
from countdb.api.resources.influx import LineProtocolResource
from countdb.api.resources.insert import InsertResource
from countdb.api.resources.metrics import MetricsResource
from countdb.api.resources.prometheus import RemoteWriteResource
from countdb.api.resources.query import (AggregateQueryResource, GroupedAggregateQueryResource,
                                         MatchingRangeQueryResource, RangeQueryResource)
from countdb.api.resources.series import SeriesDeleteResource
from countdb.api.resources.sql import SqlQueryResource
from countdb.api.services import Services


def create_app(services: Services) -> falcon.App:
    settings = services.settings
    middleware = [RequestObserver()]
    if settings.auth_required:
        middleware.append(AccessControl(services.tokens, route_scopes(settings.metrics_auth)))
    app = falcon.App(media_type=falcon.MEDIA_JSON, middleware=middleware)
    app.req_options.auto_parse_form_urlencoded = False
    app.req_options.strip_url_path_trailing_slash = False
    errors.register(app)
    writer, limits = services.writer, (settings.max_body_bytes, settings.max_points_per_request)
    routes = [
        ("/insert", InsertResource(writer, *limits)),
        ("/write", LineProtocolResource(writer, "v1", *limits)),
        ("/api/v2/write", LineProtocolResource(writer, "v2", *limits)),
        ("/api/v3/write_lp", LineProtocolResource(writer, "v3", *limits)),
        ("/api/v1/write", RemoteWriteResource(writer, *limits)),
        ("/query/range/{series:path}", RangeQueryResource(services.engine)),
        ("/query/aggregated/{series:path}", AggregateQueryResource(services.engine)),
        ("/query/sql", SqlQueryResource(services.sql)),
        ("/series/{series:path}", SeriesDeleteResource(services.datadir, writer)),
        ("/query/range", MatchingRangeQueryResource(services.engine, settings.query_max_series)),
        ("/query/aggregated", GroupedAggregateQueryResource(services.engine, settings.query_max_series)),
        ("/series", SeriesResource(services.engine)),
        ("/tags", TagsResource(services.engine)),
        ("/tags/{key}/values", TagValuesResource(services.engine)),
        ("/health", HealthResource(services)),
        ("/ready", ReadyResource(services)),
        ("/metrics", MetricsResource(StorageCollector(services.datadir))),
    ]
    for template, resource in routes:
        app.add_route(template, resource)
    return app
