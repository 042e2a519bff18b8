#!/usr/bin/env python3
"""Holds a running server's /v1/openapi.json against what it answers.

Usage: openapi_check.py http://HOST:PORT DEVICE_ID

For every operation the document lists: a request with every documented
parameter (sample values by name) must answer 200 with a body the
documented schema accepts; a request with a bad value must answer an error
status the document lists, with the Error schema; and an undocumented
parameter must be refused. Exits non-zero with the reason on any mismatch.
Needs python3-jsonschema (JSON Schema 2020-12, what OpenAPI 3.1 uses).
"""
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

import jsonschema

SAMPLES = {
    "lat": "31.23", "lon": "121.47", "k": "5", "max_distance_m": "5000000",
    "radius_m": "20000000", "limit": "10", "count": "false", "max_age_s": "0",
    "south": "-90", "west": "-180", "north": "90", "east": "180", "format": "json",
    "bbox": "-180,-90,180,90", "columns": "8", "rows": "4", "prefix": "",
}
BAD = {"lat": "95", "radius_m": "-1", "south": "91", "limit": "x", "k": "0", "bbox": "1,2",
       "columns": "513"}
POLYGON = {"type": "Polygon",
           "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]}


def fail(message):
    print("openapi_check: " + message, file=sys.stderr)
    sys.exit(1)


def request(base, method, path, params, body=None):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method.upper())
    if data is not None:
        req.add_header("Content-Type", "application/geo+json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        target = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def validate(doc, operation, status, content_type, body, where):
    responses = operation["responses"]
    if str(status) not in responses:
        fail(f"{where}: status {status} is not documented ({sorted(responses)}): {body[:200]!r}")
    response = resolve(doc, responses[str(status)])
    media = response["content"].get(content_type.split(";")[0].strip())
    if media is None:
        fail(f"{where}: content type {content_type} is not documented for {status}")
    schema = dict(media["schema"])
    schema["components"] = doc["components"]  # so "#/components/..." resolves
    try:
        jsonschema.Draft202012Validator(schema).validate(json.loads(body))
    except jsonschema.ValidationError as e:
        fail(f"{where}: the {status} answer does not match the document: {e.message} "
             f"at {list(e.absolute_path)}")


def main():
    if len(sys.argv) != 3:
        fail(__doc__)
    base, device = sys.argv[1], sys.argv[2]
    status, content_type, body = request(base, "get", "/v1/openapi.json", {})
    if status != 200:
        fail(f"/v1/openapi.json answered {status}")
    doc = json.loads(body)
    if not doc.get("openapi", "").startswith("3.1"):
        fail("not an OpenAPI 3.1 document")
    jsonschema.Draft202012Validator.check_schema(
        {"$defs": doc["components"]["schemas"]})

    checked = 0
    for template, item in doc["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {template}"
            params = [resolve(doc, p) for p in operation.get("parameters", [])]
            query = {p["name"]: SAMPLES[p["name"]] for p in params if p["in"] == "query"}
            path = template.replace("{id}", urllib.parse.quote(device, safe=""))
            body = POLYGON if "requestBody" in operation else None

            status, content_type, answer = request(base, method, path, query, body)
            if status != 200:
                fail(f"{where} with every documented parameter answered {status}: {answer[:200]!r}")
            validate(doc, operation, status, content_type, answer, where)
            if query.get("format") == "json":
                geo = dict(query, format="geojson")
                status, content_type, answer = request(base, method, path, geo, body)
                validate(doc, operation, status, content_type, answer, where + " (geojson)")

            bad = {name: BAD[name] for name in query if name in BAD}
            if bad:
                status, content_type, answer = request(base, method, path, dict(query, **bad), body)
                if status < 400:
                    fail(f"{where} with {bad} answered {status}")
                validate(doc, operation, status, content_type, answer, where + f" with {bad}")
            if "{id}" in template:
                status, content_type, answer = request(
                    base, method, template.replace("{id}", "no-such-device"), {})
                validate(doc, operation, status, content_type, answer, where + " (unknown id)")
            if template.startswith("/v1/") and template != "/v1/openapi.json":
                status, _, answer = request(base, method, path, dict(query, undocumented="1"), body)
                if status != 400:
                    fail(f"{where} took an undocumented parameter ({status})")
            checked += 1
    print(f"{checked} operations checked against /v1/openapi.json")


if __name__ == "__main__":
    main()
