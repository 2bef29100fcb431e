"""schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): how Count's non-JSON request bodies go on the wire.

NDJSON is text; Arrow IPC streams and snappy protobuf are bytes. The generated bodies are mostly not valid
in their format, which is the point: each must still get a documented status, never a 500.
"""

import schemathesis

schemathesis.serializer.alias(["application/x-ndjson"], "text/plain")
schemathesis.serializer.alias(["application/vnd.apache.arrow.stream", "application/x-protobuf"],
                              "application/octet-stream")
