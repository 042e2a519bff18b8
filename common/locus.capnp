@0xd192b1ee51e391e6;
# Locus wire schema: the one definition of every message that crosses a
# process boundary.
#
# - Devices and producers call the gateway's `Ingest` interface (Cap'n Proto
#   RPC).
# - Clients call the server's `LocationService` interface (Cap'n Proto RPC).
# - The gateway and the server talk to location units over ZeroMQ, one
#   `UnitRequest` / `UnitReply` message per frame.
#
# Conventions: angles are WGS84 degrees (latitude first in names, but
# GeoJSON-style rings are lists of `LatLon`), distances are metres, times are
# milliseconds since the Unix epoch. A NaN float means "absent" wherever a
# field says so; a zero count or limit means "no limit" where a field says so.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("locus::wire");

# ---------------------------------------------------------------- positions

struct LatLon {
  lat @0 :Float64;   # degrees, [-90, 90]
  lon @1 :Float64;   # degrees, [-180, 180]
}

struct Report {
  # One position of one device.
  id @0 :Text;
  # Device id: UTF-8, 1..128 bytes, no control characters.
  lat @1 :Float64;
  # Degrees, finite, [-90, 90].
  lon @2 :Float64;
  # Degrees, finite, [-180, 180].
  tsMs @3 :Int64;
  # When the position was taken, ms since the Unix epoch. 0 = unset: the
  # gateway stamps its receive time. Per device the newest tsMs wins.
  speedMps @4 :Float32 = nan;
  # Optional ground speed in m/s (NaN = absent), finite and >= 0 if present.
  headingDeg @5 :Float32 = nan;
  # Optional course over ground in degrees [0, 360) (NaN = absent).
  accuracyM @6 :Float32 = nan;
  # Optional horizontal accuracy radius in metres (NaN = absent), >= 0.
}

struct ReportBatch {
  reports @0 :List(Report);
}

struct Rejection {
  # One report of a batch that was not accepted.
  index @0 :UInt32;   # position of the report in its batch
  reason @1 :Text;    # why, in words a person can act on
  retry @2 :Bool;
  # The report was valid but not stored (its unit refused the batch, was
  # stalled, or did not answer in time): sending it again may succeed, and
  # is harmless (the newest ts wins). False for a report that is invalid.
}

struct BatchResult {
  accepted @0 :UInt32;
  # Reports that passed validation. Includes stale ones: a report older than
  # the stored position is acknowledged but changes nothing.
  stale @1 :UInt32;
  # Of the accepted, how many were older than what the unit already held
  # (only units report this; the gateway reports 0).
  rejected @2 :List(Rejection);
  # The reports that failed validation, by index, with a reason.
}

# ------------------------------------------------------------------ queries

struct Circle {
  center @0 :LatLon;
  radiusM @1 :Float64;   # great-circle radius in metres, >= 0
}

struct Box {
  # A lon/lat box. `west > east` means the box crosses the antimeridian.
  south @0 :Float64;
  west @1 :Float64;
  north @2 :Float64;
  east @3 :Float64;
}

struct Polygon {
  # A GeoJSON-style polygon: the first ring is the outer boundary, the rest
  # are holes. Each ring is closed (first == last) and has >= 4 positions.
  # Edges are straight lines in lon/lat (RFC 7946).
  rings @0 :List(List(LatLon));
}

struct Area {
  union {
    circle @0 :Circle;
    box @1 :Box;
    polygon @2 :Polygon;
    multiPolygon @3 :List(Polygon);
    # The union of the polygons (a GeoJSON MultiPolygon, FeatureCollection),
    # at least one; a point inside several counts once.
  }
}

struct NearestQuery {
  center @0 :LatLon;
  k @1 :UInt32 = 10;           # how many, >= 1
  maxDistanceM @2 :Float64;    # 0 = unlimited
  maxAgeS @3 :Float64;         # ignore positions older than this; 0 = any age
  idPrefix @4 :Text;           # only devices whose id starts with this; empty = all
}

struct AreaQuery {
  # Devices inside an area. Circles answer nearest first; boxes and polygons
  # answer in id order (bytewise), so a limit always keeps the same devices.
  area @0 :Area;
  limit @1 :UInt32;            # at most this many results; 0 = all
  countOnly @2 :Bool;          # return only the count, no results
  maxAgeS @3 :Float64;         # 0 = any age
  grid @4 :Grid;
  # Set (columns > 0): also count per cell of this grid over the box (a box
  # area and countOnly only); the answer's `cells` holds the counts.
  idPrefix @5 :Text;           # only devices whose id starts with this; empty = all
}

struct NearestManyQuery {
  # The k nearest devices of each of many points (a dispatch service's set
  # of riders): one answer per point, in order. At most kMaxBatchPoints
  # points (common/query.h), and points x k at most kMaxResults.
  points @0 :List(LatLon);
  k @1 :UInt32 = 10;
  maxDistanceM @2 :Float64;    # 0 = unlimited
  maxAgeS @3 :Float64;         # 0 = any age
  idPrefix @4 :Text;           # empty = all
}

struct WithinManyQuery {
  # The devices within `radiusM` of each of many points: one answer per
  # point, in order, nearest first. Without countOnly a limit is needed, and
  # points x limit is at most kMaxResults.
  points @0 :List(LatLon);
  radiusM @1 :Float64;
  limit @2 :UInt32;            # at most this many results per point
  countOnly @3 :Bool;          # only each point's count
  maxAgeS @4 :Float64;         # 0 = any age
  idPrefix @5 :Text;           # empty = all
}

struct Grid {
  # `columns` equal spans of longitude west to east by `rows` of latitude
  # south to north over a box (common/query.h, gridCellOf).
  columns @0 :UInt32;
  rows @1 :UInt32;
}

struct Query {
  union {
    nearest @0 :NearestQuery;
    within @1 :AreaQuery;
    get @2 :Text;              # one device by id
    stats @3 :Void;            # the unit's counters
  }
}

struct Hit {
  # One device in a query answer.
  id @0 :Text;
  lat @1 :Float64;
  lon @2 :Float64;
  tsMs @3 :Int64;
  distanceM @4 :Float64 = nan; # great-circle distance to the query centre; NaN without one
  speedMps @5 :Float32 = nan;
  headingDeg @6 :Float32 = nan;
  accuracyM @7 :Float32 = nan;
}

struct ShardCoverage {
  total @0 :UInt32;     # units the query was sent to
  answered @1 :UInt32;  # units that answered before the deadline
  partitions @2 :UInt32;
  # The cluster's partitions (0 from a peer that predates them: then units
  # are the measure)...
  partitionsAnswered @3 :UInt32;
  # ... and how many of them a serving replica answered for. The answer is
  # partial exactly when this is less than `partitions`.
}

struct QueryResult {
  hits @0 :List(Hit);
  # Ordered: by (distanceM, id) when the query has a centre, else by id.
  count @1 :UInt64;
  # Total number of matches, even when a limit cut `hits` or countOnly is set.
  partial @2 :Bool;
  # True when some unit did not answer in time: the answer covers only
  # `shards.answered` of `shards.total` units.
  shards @3 :ShardCoverage;
  tookUs @4 :UInt64;
  # Time spent answering, microseconds, as measured by whoever answered.
  cells @5 :List(UInt64);
  # With AreaQuery.grid: matches per cell, row by row from the south-west.
}

struct UnitStats {
  name @0 :Text;              # the unit's --name
  devices @1 :UInt64;         # positions held (expired ones excluded once swept)
  reportsApplied @2 :UInt64;  # reports that changed a position
  reportsStale @3 :UInt64;    # reports ignored because a newer one was held
  reportsRejected @4 :UInt64; # reports that failed validation
  queriesServed @5 :UInt64;   # queries answered (any kind)
  memoryBytes @6 :UInt64;     # the index's own accounting of its memory
  incarnation @7 :UInt64;
  # Random (never 0), the id of the data the unit holds: drawn when its
  # data dir is first used (kept across restarts), or at every start of a
  # memory-only unit. A change means the unit restarted without its data.
  durable @8 :Bool;           # it keeps a log in a data dir (--data-dir)
  writable @9 :Bool = true;   # it stores writes (false after a failed sync, until restart)
  logBytes @10 :UInt64;       # bytes in its logs since the last snapshot
  partitions @11 :UInt32;     # the cluster's partition count (--partitions)
  notServing @12 :List(UInt32);
  # Partitions it does not answer for (ascending): it restarted in a
  # replicated cluster and has not caught up yet, or was told it missed
  # writes. Empty once every partition it holds is caught up.
  copying @13 :Bool;          # a catch-up copy is running
  copiedDevices @14 :UInt64;  # positions copied from replicas since it started
  catchUpPending @15 :UInt32; # of notServing, those a running copy will bring up
  catchUpSeconds @16 :Float64;
  # How long it has not served every partition (its lag behind the
  # replicas, in time); 0 once it serves them all.
}

struct ClusterStats {
  units @0 :List(UnitStats);
  shards @1 :ShardCoverage;
  partitions @2 :UInt32;  # the cluster's partition count
  replicas @3 :UInt32;    # units each partition lives on: each device is counted this often
}

# ------------------------------------------------------------------- errors

enum ErrorCode {
  badRequest @0;     # the request is malformed or a value is out of range
  notFound @1;       # e.g. `get` of an unknown id
  timeout @2;        # no answer within the deadline
  unavailable @3;    # a unit or the cluster cannot be reached
  overloaded @4;     # try again later
  internal @5;       # a bug: please report it
  unauthenticated @6;  # no API key or token, or one that does not verify
  forbidden @7;      # the key or token does not allow this call or device
}

struct Error {
  code @0 :ErrorCode;
  message @1 :Text;  # one line a person can act on
}

# ------------------------------------------------- internal: ZeroMQ to units

struct UnitRequest {
  # Sent by the gateway and the server to a unit's ROUTER socket, one per
  # ZeroMQ frame. The unit answers every request with one UnitReply carrying
  # the same requestId.
  requestId @0 :UInt64;
  union {
    apply @1 :ReportBatch;   # store these positions
    obsoleteQuery @2 :Query;
    # Retired (one query, answered with a bare result): kept only so that
    # the ordinals stay put. Units refuse it with `error`.
    queries @3 :List(Query);
    dump @5 :DumpRequest;
    catchUp @6 :CatchUpRequest;
    # Sent by a gateway: stop answering for these partitions and copy them
    # from their live replicas; answered with `applied` (nothing rejected)
    # once the order is taken, not when the copy is done.
    # A page of the unit's devices (their newest reports), answered with
    # `page`: how a replica that missed writes copies a partition from one
    # that has it (catch-up), or an operator exports a unit.
    # The one query shape: one or more queries in one frame, answered in
    # one reply (`answers`, same order, one answer each). The server sends
    # the nearest and area queries that reach it in the same event-loop turn
    # together, so that under concurrent load each unit pays its per-message
    # costs (a wake-up, a receive, a send) once per turn rather than once
    # per query; get and stats travel as a list of one. At most
    # kMaxQueriesPerRequest (common/wire.h) entries, and at most kMaxResults
    # hits in all (common/query.h) so that the reply fits a frame. A
    # malformed entry refuses the whole request (`error`); a query a unit
    # refuses (bad arguments, unknown id) gets its own `error` answer and
    # the others are answered.
  }
  only @4 :PartitionSet;
  # When set, every query of `queries` answers only for the devices of
  # these partitions (as if the unit held no others): with replicas, the
  # server asks each unit for the partitions it chose that unit for, so no
  # device is counted twice. Unset: every device the unit holds.
}

struct DumpRequest {
  only @0 :PartitionSet;       # the partitions to copy; unset: every device
  cursor @1 :UInt64;           # 0 to start, then the previous page's cursor
  limit @2 :UInt32 = 10000;    # devices per page, 1..kMaxDumpPage
}

struct DumpPage {
  reports @0 :List(Report);    # the newest report of each device, with its ts
  cursor @1 :UInt64;           # for the next page; 0 = done
  epoch @2 :UInt64;
  # What the cursor is a position in: it changes when the unit restarts or
  # removes devices (expiry), and a page of another epoch than the first
  # means the copier must start over.
  # Devices stored after the dump began are on later pages; one moved after
  # its page was read comes back at its older position, so a copier also
  # takes live writes and keeps the newest (the usual rule). The unit does
  # not expire positions while a dump is being read (a page within 10 s).
}

struct CatchUpRequest {
  partitions @0 :UInt32;             # the cluster's partition count
  copies @1 :List(CatchUpCopy);      # what to copy, from where
  wait @2 :List(UInt32);
  # Partitions to stop answering for that have no live replica to copy
  # from now: the next order brings them a source.
  holds @3 :List(UInt32);
  # Every partition the unit holds, as the sender places them (empty:
  # unknown). The others it has no devices of: it stops counting them as
  # not served.
}

struct CatchUpCopy {
  source @0 :Text;              # a replica's ZeroMQ endpoint
  serve @1 :List(UInt32);       # the partitions to copy from it
}

struct PartitionSet {
  partitions @0 :UInt32;        # the cluster's partition count (partitionOf)
  serve @1 :List(UInt32);       # the partitions to answer for, each < partitions
}

struct QueryAnswer {
  # The answer to one entry of `UnitRequest.queries`.
  union {
    result @0 :QueryResult;  # answer to a nearest/within/get query
    stats @1 :UnitStats;     # answer to a stats query
    error @2 :Error;         # this query was not acted upon
  }
}

struct UnitReply {
  requestId @0 :UInt64;      # as in the request; 0 if the request was unreadable
  union {
    applied @1 :BatchResult; # answer to `apply`
    obsoleteResult @2 :QueryResult;
    obsoleteStats @3 :UnitStats;
    # Retired with UnitRequest.obsoleteQuery; never sent.
    error @4 :Error;         # the request was not acted upon
    answers @5 :List(QueryAnswer);
    # Answer to `queries`: one per query, in the request's order.
    page @6 :DumpPage;             # answer to `dump`
  }
  notServing @7 :List(UInt32);
  # With `answers`: the partitions asked for (`only`, or all) that the unit
  # is not serving (catching up), and answered for as if it held none of
  # their devices. The server asks another replica for them.
}

# ---------------------------------------------------- external: Cap'n Proto RPC

interface Ingest {
  # The gateway's device-facing fast path. Clients may pipeline many calls.
  report @0 (batch :ReportBatch) -> (result :BatchResult);
  # Reports outside this Ingest's scope are rejected one by one.

  login @1 (token :Text) -> (ingest :Ingest, scope :DeviceScope);
  # Trades a device token (`locus token issue`) for an Ingest that writes
  # the ids the token allows; pipeline report calls on it at once. With
  # --auth-keys, the Ingest a connection starts with answers login only:
  # its report, and a login with a token that is missing, malformed,
  # forged or expired, fail with "unauthenticated: ..." and the gateway
  # closes the connection. Without, login checks nothing and returns an
  # Ingest that writes any id.
}

struct DeviceScope {
  tenant @0 :Text;      # who the token was issued to
  prefix @1 :Text;      # the ids the Ingest may write start with this; "" = any
  expiresMs @2 :Int64;  # the token's expiry; 0 = none (tokens are not checked)
}

interface LocationService {
  # The server's query interface. Every method either returns its result or
  # a typed `error`; the server itself never fails a call for bad input.
  nearest @0 (query :NearestQuery) -> (result :QueryResult, error :Error);
  within @1 (query :AreaQuery) -> (result :QueryResult, error :Error);
  # Radius (circle), box and polygon queries; `countOnly` makes it "how many".
  get @2 (id :Text) -> (result :QueryResult, error :Error);
  stats @3 () -> (stats :ClusterStats, error :Error);
  # Needs an admin key when the server has --api-keys.

  login @4 (apiKey :Text) -> (service :LocationService, scope :Text, error :Error);
  # Trades an API key ("KEY_ID.SECRET", `locus apikey create`) for a
  # LocationService bound to it; pipeline calls on it at once. Its scope:
  # "read" (every device), "read:PREFIX" (queries see only ids starting
  # with PREFIX; get of another id is `forbidden`) or "admin" (also stats).
  # The key is checked again on every call, so one removed from the file
  # (and SIGHUP) stops working. With --api-keys, the service a connection
  # starts with answers every other call with `unauthenticated`. Without,
  # login checks nothing and returns a service that may do everything.

  nearestMany @5 (query :NearestManyQuery) -> (results :List(QueryResult), error :Error);
  withinMany @6 (query :WithinManyQuery) -> (results :List(QueryResult), error :Error);
  # Many points in one call, one result per point in their order; the
  # server sends them to each unit as a few messages. The whole call is
  # refused (`error`, naming the point) if any point's query is bad.
}
