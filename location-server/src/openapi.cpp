// The OpenAPI 3.1 description of the server's HTTP API (http_api.h).
// tests/server/openapi_check.py validates it, and every answer the tests
// get, against these schemas: keep the two in step with http_api.cpp.
#include "locus/server/http_api.h"

namespace locus::server {

const char* openApiDocument() {
  return R"json({
  "openapi": "3.1.0",
  "info": {
    "title": "Locus location server",
    "version": "1",
    "description": "Who is near, inside an area, or where one device is. Distances are great-circle metres; coordinates WGS84 degrees. Every query also takes format=geojson for a FeatureCollection of Points. A server started with --api-keys wants an API key on every /v1/ query: Authorization: Bearer KEY, or access_token=KEY in the query (EventSource); 401 without a valid one, 403 beyond its scope."
  },
  "paths": {
    "/v1/nearest": {
      "get": {
        "summary": "The k devices nearest a point, nearest first",
        "parameters": [
          {"$ref": "#/components/parameters/lat"},
          {"$ref": "#/components/parameters/lon"},
          {"name": "k", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 50000, "default": 10}},
          {"name": "max_distance_m", "in": "query", "schema": {"type": "number", "minimum": 0, "description": "0 = unlimited"}},
          {"$ref": "#/components/parameters/max_age_s"},
          {"$ref": "#/components/parameters/prefix"},
          {"$ref": "#/components/parameters/format"}
        ],
        "responses": {"200": {"$ref": "#/components/responses/Answer"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}}
      }
    },
    "/v1/radius": {
      "get": {
        "summary": "Devices within radius_m of a point, nearest first",
        "parameters": [
          {"$ref": "#/components/parameters/lat"},
          {"$ref": "#/components/parameters/lon"},
          {"name": "radius_m", "in": "query", "required": true, "schema": {"type": "number", "minimum": 0}},
          {"$ref": "#/components/parameters/limit"},
          {"$ref": "#/components/parameters/count"},
          {"$ref": "#/components/parameters/max_age_s"},
          {"$ref": "#/components/parameters/prefix"},
          {"$ref": "#/components/parameters/format"}
        ],
        "responses": {"200": {"$ref": "#/components/responses/Answer"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}}
      }
    },
    "/v1/box": {
      "get": {
        "summary": "Devices inside a lon/lat box, by id; west > east crosses the antimeridian",
        "parameters": [
          {"name": "south", "in": "query", "required": true, "schema": {"type": "number", "minimum": -90, "maximum": 90}},
          {"name": "west", "in": "query", "required": true, "schema": {"type": "number", "minimum": -180, "maximum": 180}},
          {"name": "north", "in": "query", "required": true, "schema": {"type": "number", "minimum": -90, "maximum": 90}},
          {"name": "east", "in": "query", "required": true, "schema": {"type": "number", "minimum": -180, "maximum": 180}},
          {"$ref": "#/components/parameters/limit"},
          {"$ref": "#/components/parameters/count"},
          {"$ref": "#/components/parameters/max_age_s"},
          {"$ref": "#/components/parameters/prefix"},
          {"$ref": "#/components/parameters/format"}
        ],
        "responses": {"200": {"$ref": "#/components/responses/Answer"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}}
      }
    },
    "/v1/grid": {
      "get": {
        "summary": "Devices per cell of a grid over a box (a heat map): units count, the server sums",
        "parameters": [
          {"name": "bbox", "in": "query", "required": true, "schema": {"type": "string"}, "description": "WEST,SOUTH,EAST,NORTH; west > east crosses the antimeridian"},
          {"name": "columns", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 512, "default": 64}},
          {"name": "rows", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 512, "default": 32}, "description": "columns x rows at most 65,536"},
          {"$ref": "#/components/parameters/max_age_s"},
          {"$ref": "#/components/parameters/prefix"}
        ],
        "responses": {
          "200": {"description": "Counts per cell", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Grid"}}}},
          "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/v1/polygon": {
      "post": {
        "summary": "Devices inside a GeoJSON area, by id",
        "description": "The body is a Polygon, MultiPolygon, a Feature of either, or a FeatureCollection or GeometryCollection (their union). Edges are straight in lon/lat (RFC 7946); an area across the antimeridian is split into one polygon on each side.",
        "parameters": [
          {"$ref": "#/components/parameters/limit"},
          {"$ref": "#/components/parameters/count"},
          {"$ref": "#/components/parameters/max_age_s"},
          {"$ref": "#/components/parameters/prefix"},
          {"$ref": "#/components/parameters/format"}
        ],
        "requestBody": {"required": true, "content": {"application/geo+json": {"schema": {"type": "object", "required": ["type"]}}, "application/json": {"schema": {"type": "object", "required": ["type"]}}}},
        "responses": {"200": {"$ref": "#/components/responses/Answer"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}}
      }
    },
    "/v1/devices/{id}": {
      "get": {
        "summary": "The stored position of one device (asked of its partition only)",
        "parameters": [
          {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 128}, "description": "Percent-encoded; a '/' in an id is %2F"},
          {"$ref": "#/components/parameters/format"}
        ],
        "responses": {"200": {"$ref": "#/components/responses/Answer"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}}
      }
    },
    "/v1/stats": {
      "get": {
        "summary": "Per unit: devices, reports, queries, storage and partitions",
        "description": "Needs an admin API key when the server has --api-keys.",
        "responses": {"200": {"description": "The cluster's counters", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Stats"}}}}, "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"}}
      }
    },
    "/v1/openapi.json": {
      "get": {
        "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object", "required": ["openapi", "paths"]}}}}}
      }
    }
  },
  "security": [{}, {"bearer": []}, {"access_token": []}],
  "components": {
    "securitySchemes": {
      "bearer": {"type": "http", "scheme": "bearer", "description": "an API key, KEY_ID.SECRET (locus apikey create)"},
      "access_token": {"type": "apiKey", "in": "query", "name": "access_token"}
    },
    "parameters": {
      "lat": {"name": "lat", "in": "query", "required": true, "schema": {"type": "number", "minimum": -90, "maximum": 90}},
      "lon": {"name": "lon", "in": "query", "required": true, "schema": {"type": "number", "minimum": -180, "maximum": 180}},
      "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 50000, "default": 0}, "description": "at most this many results; 0 = all (refused beyond 50,000 matches)"},
      "count": {"name": "count", "in": "query", "schema": {"type": "boolean", "default": false}, "description": "only the count, no results"},
      "max_age_s": {"name": "max_age_s", "in": "query", "schema": {"type": "number", "minimum": 0, "default": 0}, "description": "ignore positions older than this; 0 = any age"},
      "prefix": {"name": "prefix", "in": "query", "schema": {"type": "string", "maxLength": 128}, "description": "only devices whose id starts with this (an API key scoped read:PREFIX narrows every query to its prefix; a prefix outside it is 403)"},
      "format": {"name": "format", "in": "query", "schema": {"enum": ["json", "geojson"], "default": "json"}}
    },
    "responses": {
      "Answer": {
        "description": "The answer; partial is true when some partition had no replica answer in time",
        "content": {"application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Answer"}, {"$ref": "#/components/schemas/GeoJsonAnswer"}]}}}
      },
      "Error": {
        "description": "Why the query was not answered",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
      }
    },
    "schemas": {
      "Error": {
        "type": "object", "required": ["error"], "additionalProperties": false,
        "properties": {"error": {"type": "string", "minLength": 1}}
      },
      "Coverage": {
        "type": "object", "required": ["total", "answered"], "additionalProperties": false,
        "properties": {"total": {"type": "integer", "minimum": 0}, "answered": {"type": "integer", "minimum": 0}}
      },
      "HitProperties": {
        "type": "object", "required": ["id", "ts"],
        "properties": {
          "id": {"type": "string"},
          "ts": {"type": "integer", "description": "milliseconds since the Unix epoch"},
          "distance_m": {"type": "number", "minimum": 0, "description": "present where the query has a centre"},
          "speed_mps": {"type": "number"},
          "heading_deg": {"type": "number"},
          "accuracy_m": {"type": "number"}
        }
      },
      "Hit": {
        "allOf": [{"$ref": "#/components/schemas/HitProperties"}],
        "type": "object", "required": ["id", "lat", "lon", "ts"],
        "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90}, "lon": {"type": "number", "minimum": -180, "maximum": 180}}
      },
      "Answer": {
        "type": "object", "required": ["results", "count", "partial", "shards", "took_us"], "additionalProperties": false,
        "properties": {
          "results": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}},
          "count": {"type": "integer", "minimum": 0, "description": "every match, even when limit or count cut results"},
          "partial": {"type": "boolean"},
          "shards": {"$ref": "#/components/schemas/Coverage"},
          "partitions": {"$ref": "#/components/schemas/Coverage"},
          "took_us": {"type": "integer", "minimum": 0}
        }
      },
      "GeoJsonAnswer": {
        "type": "object", "required": ["type", "features", "count", "partial", "shards", "took_us"],
        "properties": {
          "type": {"const": "FeatureCollection"},
          "features": {"type": "array", "items": {
            "type": "object", "required": ["type", "geometry", "properties"],
            "properties": {
              "type": {"const": "Feature"},
              "geometry": {"type": "object", "required": ["type", "coordinates"], "properties": {"type": {"const": "Point"}, "coordinates": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}}},
              "properties": {"$ref": "#/components/schemas/HitProperties"}
            }
          }},
          "count": {"type": "integer", "minimum": 0},
          "partial": {"type": "boolean"},
          "shards": {"$ref": "#/components/schemas/Coverage"},
          "partitions": {"$ref": "#/components/schemas/Coverage"},
          "took_us": {"type": "integer", "minimum": 0}
        }
      },
      "Grid": {
        "type": "object", "required": ["bbox", "columns", "rows", "cells", "count", "partial", "shards", "took_us"], "additionalProperties": false,
        "properties": {
          "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
          "columns": {"type": "integer", "minimum": 1},
          "rows": {"type": "integer", "minimum": 1},
          "cells": {"type": "array", "items": {"type": "integer", "minimum": 0}, "description": "row by row from the south-west cell: cells[row * columns + column]; they sum to count"},
          "count": {"type": "integer", "minimum": 0},
          "partial": {"type": "boolean"},
          "shards": {"$ref": "#/components/schemas/Coverage"},
          "partitions": {"$ref": "#/components/schemas/Coverage"},
          "took_us": {"type": "integer", "minimum": 0}
        }
      },
      "UnitStats": {
        "type": "object",
        "required": ["name", "devices", "reports_applied", "reports_stale", "reports_rejected", "queries_served", "memory_bytes", "incarnation", "storage", "partitions"],
        "properties": {
          "name": {"type": "string"},
          "devices": {"type": "integer", "minimum": 0},
          "reports_applied": {"type": "integer", "minimum": 0},
          "reports_stale": {"type": "integer", "minimum": 0},
          "reports_rejected": {"type": "integer", "minimum": 0},
          "queries_served": {"type": "integer", "minimum": 0},
          "memory_bytes": {"type": "integer", "minimum": 0},
          "incarnation": {"type": "string"},
          "storage": {"type": "object", "required": ["durable"], "properties": {"durable": {"type": "boolean"}, "writable": {"type": "boolean"}, "log_bytes": {"type": "integer"}}},
          "partitions": {"type": "object", "required": ["total", "not_serving", "catching_up"], "properties": {
            "total": {"type": "integer"}, "not_serving": {"type": "integer"}, "catching_up": {"type": "boolean"},
            "catch_up_pending": {"type": "integer"}, "catch_up_seconds": {"type": "number"}, "copied_devices": {"type": "integer"}}}
        }
      },
      "Stats": {
        "type": "object", "required": ["units", "partial", "shards", "partitions", "replicas"], "additionalProperties": false,
        "properties": {
          "units": {"type": "array", "items": {"$ref": "#/components/schemas/UnitStats"}},
          "partial": {"type": "boolean"},
          "shards": {"$ref": "#/components/schemas/Coverage"},
          "partitions": {"type": "integer", "minimum": 1},
          "replicas": {"type": "integer", "minimum": 1}
        }
      }
    }
  }
}
)json";
}

}  // namespace locus::server
