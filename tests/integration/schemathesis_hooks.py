"""Schemathesis hooks for the server fuzz test: how to send the JSON-lines upsert body."""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value):
    if isinstance(value, list):
        return "\n".join(json.dumps(v) for v in value).encode()
    return json.dumps(value).encode()
