// The live map the server serves at /: the devices in view moving live
// (GET /v1/stream), or, when there are more in view than the stream shows,
// a heat map of counts per cell (GET /v1/grid), the 5 nearest to a click
// (GET /v1/nearest), and the
// count inside a drawn box (GET /v1/box?count) or polygon (POST
// /v1/polygon?count). No tile server: the land is world-atlas's outline.
// `window.locusMap` exposes the page's state to the browser test.
(function () {
  'use strict';

  const state = {
    devices: new Map(),  // id -> Leaflet circle marker
    events: 0,           // position events taken
    moves: 0,            // devices seen at a new position
    count: null,         // devices in view, as the last event said
    lastArea: null,      // {kind, query, count} of the last box or polygon
    heat: null,          // the last grid shown: {columns, rows, count}, or null
    stream: null,
  };
  window.locusMap = state;

  // A server with --api-keys wants a key on every query: open the map as
  // /?access_token=KEY and every call below carries it (EventSource cannot
  // send an Authorization header).
  const token = new URLSearchParams(window.location.search).get('access_token');
  const api = (path) =>
    token ? `${path}${path.includes('?') ? '&' : '?'}access_token=${encodeURIComponent(token)}`
          : path;

  const status = document.getElementById('status');
  const areaText = document.getElementById('area');
  const nearestList = document.getElementById('nearest');

  const map = L.map('map', {preferCanvas: true, boxZoom: false, worldCopyJump: true})
      .setView([31.25, 121.5], 10);
  state.map = map;
  const renderer = L.canvas({padding: 0.2});
  const devices = L.layerGroup().addTo(map);
  const heat = L.layerGroup().addTo(map);
  const drawn = L.layerGroup().addTo(map);

  // The land under everything else (its own pane, below the overlays).
  map.createPane('land').style.zIndex = 250;
  fetch('/vendor/land-50m.json')
      .then((r) => r.json())
      .then((topology) => {
        L.geoJSON(topojson.feature(topology, topology.objects.land), {
          pane: 'land',
          renderer: L.canvas({pane: 'land'}),
          interactive: false,
          style: {color: '#8a8a8a', weight: 1, fillColor: '#f4f1e8', fillOpacity: 1},
        }).addTo(map);
      });

  // ------------------------------------------------------------ live stream

  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  // The view as WEST,SOUTH,EAST,NORTH within the world's bounds.
  function viewBox() {
    const b = map.getBounds();
    let west = b.getWest();
    let east = b.getEast();
    if (east - west >= 360) {
      west = -180;
      east = 180;
    } else {
      west = ((west + 540) % 360) - 180;  // wrapped views cross the antimeridian
      east = ((east + 540) % 360) - 180;
    }
    return [west, clamp(b.getSouth(), -90, 90), east, clamp(b.getNorth(), -90, 90)];
  }

  function openStream() {
    if (state.stream) state.stream.close();
    const url = `/v1/stream?bbox=${viewBox().join(',')}&limit=2000&interval_ms=1000`;
    state.stream = new EventSource(api(url));
    state.stream.addEventListener('positions', (e) => show(JSON.parse(e.data)));
    state.stream.addEventListener('error', (e) => {
      if (e.data) status.textContent = 'stream: ' + JSON.parse(e.data).error;
      else if (state.stream.readyState !== EventSource.OPEN) status.textContent = 'reconnecting…';
    });
  }

  function show(event) {
    if (event.seq === 1) {  // a new stream: start from its snapshot
      devices.clearLayers();
      state.devices.clear();
    }
    for (const hit of event.changed) {
      const at = [hit.lat, hit.lon];
      const marker = state.devices.get(hit.id);
      if (marker) {
        marker.setLatLng(at);
        ++state.moves;
      } else {
        const m = L.circleMarker(at, {renderer, radius: 3, weight: 1, color: '#0b5394',
                                      fillColor: '#3d85c6', fillOpacity: 0.9});
        m.bindTooltip(hit.id);
        m.addTo(devices);
        state.devices.set(hit.id, m);
      }
    }
    for (const id of event.left) {
      const marker = state.devices.get(id);
      if (marker) devices.removeLayer(marker);
      state.devices.delete(id);
    }
    ++state.events;
    state.count = event.count;
    // More in view than the stream shows: counts per cell instead of dots.
    const crowded = event.shown < event.count;
    if (crowded && !heatTimer) {
      refreshHeat();
      heatTimer = setInterval(refreshHeat, 2000);
    } else if (!crowded && heatTimer) {
      clearInterval(heatTimer);
      heatTimer = null;
      heat.clearLayers();
      state.heat = null;
    }
    if (crowded) map.removeLayer(devices); else devices.addTo(map);
    status.textContent = `${event.count.toLocaleString()} devices in view` +
        (crowded ? ' — devices per cell' : '') +
        (event.partial ? ' — partial: a unit did not answer' : '');
  }

  // ---------------------------------------------------------- heat map

  let heatTimer = null;

  function refreshHeat() {
    const size = map.getSize();
    const columns = clamp(Math.round(size.x / 12), 1, 256);
    const rows = clamp(Math.round(size.y / 12), 1, 256);
    const bbox = viewBox();
    const b = map.getBounds();
    // Cells are drawn where the view is (its longitudes may run past ±180).
    const west = b.getEast() - b.getWest() >= 360 ? -180 : b.getWest();
    const width = bbox[2] >= bbox[0] ? bbox[2] - bbox[0] : bbox[2] + 360 - bbox[0];
    fetch(api(`/v1/grid?bbox=${bbox.join(',')}&columns=${columns}&rows=${rows}`))
        .then((r) => r.json())
        .then((grid) => {
          if (grid.error || !heatTimer) return;
          heat.clearLayers();
          const most = Math.max(1, ...grid.cells);
          const dx = width / grid.columns;
          const dy = (bbox[3] - bbox[1]) / grid.rows;
          grid.cells.forEach((n, i) => {
            if (n === 0) return;
            const x = west + (i % grid.columns) * dx;
            const y = bbox[1] + Math.floor(i / grid.columns) * dy;
            const t = Math.sqrt(n / most);
            L.rectangle([[y, x], [y + dy, x + dx]], {
              renderer, stroke: false, interactive: false, fillOpacity: 0.15 + 0.7 * t,
              fillColor: t > 0.66 ? '#b71c1c' : t > 0.33 ? '#f57c00' : '#fbc02d',
            }).addTo(heat);
          });
          state.heat = {columns: grid.columns, rows: grid.rows, count: grid.count};
        });
  }

  map.on('moveend', openStream);
  openStream();

  // ------------------------------------------------------- nearest on click

  let tool = null;  // 'box', 'polygon' or null

  map.on('click', (e) => {
    if (tool) return;
    const {lat, lng} = e.latlng.wrap();
    fetch(api(`/v1/nearest?lat=${lat}&lon=${lng}&k=5`))
        .then((r) => r.json())
        .then((answer) => {
          nearestList.replaceChildren();
          drawn.clearLayers();
          if (answer.error) {
            areaText.textContent = answer.error;
            return;
          }
          areaText.textContent = `The 5 nearest to ${lat.toFixed(5)}, ${lng.toFixed(5)}:`;
          for (const hit of answer.results) {
            const li = document.createElement('li');
            li.textContent = `${hit.id} — ${Math.round(hit.distance_m).toLocaleString()} m`;
            nearestList.appendChild(li);
            L.polyline([[lat, lng], [hit.lat, hit.lon]], {color: '#e69138', weight: 2})
                .addTo(drawn);
          }
        });
  });

  // ------------------------------------------------------ box and polygon

  const boxButton = document.getElementById('draw-box');
  const polygonButton = document.getElementById('draw-polygon');

  function use(next) {
    tool = tool === next ? null : next;
    boxButton.classList.toggle('active', tool === 'box');
    polygonButton.classList.toggle('active', tool === 'polygon');
    map.getContainer().classList.toggle('drawing', tool !== null);
    if (tool) map.dragging.disable(); else map.dragging.enable();
    if (tool === 'polygon') map.doubleClickZoom.disable(); else map.doubleClickZoom.enable();
    vertices = [];
  }
  boxButton.addEventListener('click', () => use('box'));
  polygonButton.addEventListener('click', () => use('polygon'));
  document.getElementById('clear').addEventListener('click', () => {
    drawn.clearLayers();
    nearestList.replaceChildren();
    areaText.textContent = '';
  });

  function counted(kind, query, answer) {
    if (answer.error) {
      areaText.textContent = answer.error;
      return;
    }
    state.lastArea = {kind, query, count: answer.count};
    areaText.innerHTML = '';
    const strong = document.createElement('strong');
    strong.id = 'area-count';
    strong.textContent = answer.count.toLocaleString('en-US');
    areaText.append(`${kind === 'box' ? 'Box' : 'Polygon'}: `, strong, ' devices');
    use(null);
  }

  let corner = null;
  let rubber = null;
  map.on('mousedown', (e) => {
    if (tool !== 'box') return;
    corner = e.latlng;
    drawn.clearLayers();
    rubber = L.rectangle(L.latLngBounds(corner, corner), {color: '#cc0000', weight: 2}).addTo(drawn);
  });
  map.on('mousemove', (e) => {
    if (tool === 'box' && corner) rubber.setBounds(L.latLngBounds(corner, e.latlng));
  });
  map.on('mouseup', (e) => {
    if (tool !== 'box' || !corner) return;
    const b = L.latLngBounds(corner, e.latlng);
    corner = null;
    const query = {south: clamp(b.getSouth(), -90, 90), west: clamp(b.getWest(), -180, 180),
                   north: clamp(b.getNorth(), -90, 90), east: clamp(b.getEast(), -180, 180)};
    const params = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
    fetch(api(`/v1/box?${params}&count`))
        .then((r) => r.json())
        .then((answer) => counted('box', query, answer));
  });

  let vertices = [];
  map.on('click', (e) => {
    if (tool !== 'polygon') return;
    vertices.push([e.latlng.lng, e.latlng.lat]);
    drawn.clearLayers();
    L.polyline(vertices.map(([lon, lat]) => [lat, lon]), {color: '#cc0000'}).addTo(drawn);
  });
  map.on('dblclick', () => {
    if (tool !== 'polygon' || vertices.length < 3) return;
    const ring = vertices.concat([vertices[0]]);
    const geometry = {type: 'Polygon', coordinates: [ring]};
    L.polygon(ring.map(([lon, lat]) => [lat, lon]), {color: '#cc0000'}).addTo(drawn);
    fetch(api('/v1/polygon?count'), {method: 'POST', body: JSON.stringify(geometry)})
        .then((r) => r.json())
        .then((answer) => counted('polygon', geometry, answer));
  });
})();
