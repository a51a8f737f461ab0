// wshub console (issue 16): plain JavaScript, no framework, no build step. Served by wshubd at
// /console under a Content-Security-Policy that allows no inline script. Every datum comes from
// an endpoint behind the API key, sent as `Authorization: Bearer` (the key stays in this tab's
// sessionStorage). Live data is polled every 2 s while the tab is visible; the traffic tail is
// GET /api/tap read as Server-Sent Events through fetch (so the key never goes in a URL).
'use strict';

(() => {
  const KEY_STORE = 'wshub.console.key';
  const POLL_MS = 2000;
  const INFO_MS = 10000;
  const HISTORY = 60;      // samples per chart (2 minutes)
  const TAIL_MAX = 500;    // lines kept in the tail
  const PAUSED_MAX = 2000; // events kept while paused

  const $ = (id) => document.getElementById(id);
  let key = sessionStorage.getItem(KEY_STORE) || '';

  // ------------------------------------------------------------------ DOM helpers

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }
  const setText = (id, t) => { const e = $(id); if (e.textContent !== t) e.textContent = t; };
  const json = (v) => JSON.stringify(v, null, 2);
  const errText = (r) => (r.json && (r.json.message || r.json.error)) ? `${r.status} ${r.json.error || ''}: ${r.json.message || ''}${r.json.field ? ` (field ${r.json.field})` : ''}` : `${r.status} ${r.text || 'no answer'}`;

  function ago(iso) {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }
  const dur = (s) => ago(new Date(Date.now() - s * 1000).toISOString());

  // ------------------------------------------------------------------ the API

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${key}` };
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) { headers['Content-Type'] = 'application/json'; init.body = typeof body === 'string' ? body : JSON.stringify(body); }
    let res;
    try { res = await fetch(path, init); } catch (e) { return { status: 0, text: String(e.message || e) }; }
    const text = await res.text();
    let parsed = null;
    try { parsed = JSON.parse(text); } catch { /* not JSON */ }
    if (res.status === 401 && key) signOut('The server refused the key (401): sign in again.');
    return { status: res.status, json: parsed, text };
  }

  // ------------------------------------------------------------------ sign-in

  async function signIn(candidate) {
    key = candidate;
    const r = await api('GET', '/api/info');
    if (r.status !== 200) {
      key = '';
      sessionStorage.removeItem(KEY_STORE);
      $('signin-error').textContent = r.status === 401 ? 'Wrong API key.' : `Cannot sign in: ${errText(r)}`;
      return false;
    }
    sessionStorage.setItem(KEY_STORE, key);
    $('signin').hidden = true;
    $('app').hidden = false;
    $('nav').hidden = false;
    $('signout').hidden = false;
    $('signin-error').textContent = '';
    showInfo(r.json);
    startLive();
    return true;
  }

  function signOut(message) {
    key = '';
    sessionStorage.removeItem(KEY_STORE);
    stopLive();
    $('app').hidden = true;
    $('nav').hidden = true;
    $('signout').hidden = true;
    $('signin').hidden = false;
    $('server-line').textContent = '';
    $('signin-error').textContent = message || '';
    $('key').value = '';
    $('key').focus();
  }

  // ------------------------------------------------------------------ the polling loop

  let pollTimer = null;
  let lastInfo = 0;
  let live = false;

  function startLive() {
    live = true;
    schedule(0);
    startTail();
  }
  function stopLive() {
    live = false;
    clearTimeout(pollTimer);
    stopTail();
  }
  function schedule(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  }
  async function poll() {
    if (!live) return;
    if (document.hidden) return; // resumed by visibilitychange
    serverLine();
    const jobs = [loadConnections(), loadChannels(), loadMetrics(), loadScenarios()];
    if (Date.now() - lastInfo > INFO_MS) jobs.push(loadInfo());
    await Promise.allSettled(jobs);
    if (live && !document.hidden) schedule(POLL_MS);
  }
  document.addEventListener('visibilitychange', () => { if (live && !document.hidden) schedule(0); });

  // ------------------------------------------------------------------ connections

  const connRows = new Map(); // id -> {tr, cells}

  function who(c) {
    if (c.subject !== undefined) return `sub ${c.subject}`;
    if (c.member !== undefined) return `member ${c.member}`;
    if (c.refused) return 'refused';
    if (c.client_id !== undefined || c.thread !== undefined) return [c.thread ? `thread ${c.thread}` : null, c.session_id ? `session ${c.session_id}` : null].filter(Boolean).join(', ') || 'flow';
    return '';
  }

  function subsCell(c) {
    const subs = c.subscriptions || [];
    return subs.map((s) => el('span', { class: 'sub', title: s.identifier || s.channel, text: `${s.channel}${s.pending ? ' (pending)' : ''}` }));
  }

  async function kick(id) {
    const code = Number($('kick-code').value) || 1000;
    const reason = $('kick-reason').value;
    const body = { code, reconnect: $('kick-reconnect').checked };
    if (reason) body.reason = reason;
    const r = await api('POST', `/api/connections/${id}/close`, body);
    $('conns-error').textContent = r.status === 200 ? '' : `Kick ${id}: ${errText(r)}`;
    schedule(150);
  }

  function sendTo(id, apiName) {
    $('pub-mode').value = 'send';
    $('pub-conn').value = id;
    if (['service', 'cable', 'flow'].includes(apiName) && $('pub-api').value !== apiName) { $('pub-api').value = apiName; fillExamples(); }
    syncMode();
    $('pub-event').focus();
  }

  function connRow(c) {
    const cells = {};
    const labels = { id: 'id', api: 'API', who: 'who', subs: 'subscriptions', io: 'in / out', peer: 'peer', since: 'since' };
    for (const [k, label] of Object.entries(labels)) cells[k] = el('td', { 'data-label': label });
    cells.api.className = 'api';
    const actions = el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'danger', 'data-kick': c.id, 'aria-label': `Kick connection ${c.id}`, onclick: () => kick(c.id), text: 'Kick' }), ' ',
      el('button', { type: 'button', class: 'ghost', 'aria-label': `Send an event to connection ${c.id}`, onclick: () => sendTo(c.id, c.api), text: 'Send' }));
    const tr = el('tr', { 'data-id': c.id }, cells.id, cells.api, cells.who, cells.subs, cells.io, cells.peer, cells.since, actions);
    return { tr, cells };
  }

  async function loadConnections() {
    const q = $('conns-api').value ? `?api=${encodeURIComponent($('conns-api').value)}` : '';
    const r = await api('GET', `/api/connections${q}`);
    if (r.status !== 200) { $('conns-error').textContent = `GET /api/connections: ${errText(r)}`; return; }
    if ($('conns-error').textContent.startsWith('GET')) $('conns-error').textContent = '';
    const list = r.json.connections || [];
    setText('conns-count', r.json.total > list.length ? `${list.length} of ${r.json.total}` : String(list.length));
    const tbody = $('conns').tBodies[0];
    const seen = new Set();
    list.forEach((c, i) => {
      seen.add(c.id);
      let row = connRows.get(c.id);
      if (!row) { row = connRow(c); connRows.set(c.id, row); }
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
      const x = row.cells;
      x.id.textContent = c.id;
      x.api.textContent = c.api;
      x.who.textContent = who(c);
      x.subs.replaceChildren(...subsCell(c));
      x.io.textContent = `${c.messages_in} / ${c.messages_out}`;
      x.io.title = `${c.bytes_in} / ${c.bytes_out} bytes, ${c.queued_bytes} queued`;
      x.peer.textContent = `${c.peer} · w${c.worker}`;
      x.since.textContent = ago(c.connected_at);
    });
    for (const [id, row] of connRows) {
      if (!seen.has(id)) {
        if (row.tr.contains(document.activeElement)) $('conns-h').setAttribute('tabindex', '-1'), $('conns-h').focus();
        row.tr.remove();
        connRows.delete(id);
      }
    }
  }

  // ------------------------------------------------------------------ channels

  const chanRows = new Map(); // channel -> {tr, subs, total}: kept, so that a focused button stays

  function chanRow(name) {
    const subs = el('td');
    const total = el('td');
    const pick = () => { $('pub-mode').value = 'publish'; syncMode(); $('pub-channel').value = name; $('pub-event').focus(); };
    const tr = el('tr', {}, el('td', { class: 'mono' },
      el('button', { type: 'button', class: 'link', title: 'Publish to this channel', onclick: pick, text: name })), subs, total);
    return { tr, subs, total };
  }

  async function loadChannels() {
    const r = await api('GET', '/api/channels');
    if (r.status !== 200) { $('channels-error').textContent = `GET /api/channels: ${errText(r)}`; return; }
    $('channels-error').textContent = '';
    const list = r.json.channels || [];
    setText('channels-count', String(list.length));
    const tbody = $('channels').tBodies[0];
    const seen = new Set();
    list.forEach((ch, i) => {
      seen.add(ch.channel);
      let row = chanRows.get(ch.channel);
      if (!row) { row = chanRow(ch.channel); chanRows.set(ch.channel, row); }
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
      row.subs.textContent = Object.entries(ch.subscribers || {}).map(([a, n]) => `${a} ${n}`).join(', ');
      row.total.textContent = String(ch.total);
    });
    for (const [name, row] of chanRows) if (!seen.has(name)) { row.tr.remove(); chanRows.delete(name); }
  }

  // ------------------------------------------------------------------ metrics and charts

  // Prometheus text format: `name{labels} value` lines; # lines skipped.
  function parseMetrics(text) {
    const out = new Map();
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const labels = {};
      if (m[3]) for (const p of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
      if (!out.has(m[1])) out.set(m[1], []);
      out.get(m[1]).push({ labels, value: Number(m[4]) });
    }
    return out;
  }
  const sum = (mm, name) => (mm.get(name) || []).reduce((a, s) => a + s.value, 0);
  const byLabel = (mm, name, label) => (mm.get(name) || []).map((s) => [s.labels[label], s.value]);

  const series = { conns: [], rate: [], lat: [], pub: [] };
  let prev = null;

  function push(name, v) {
    const s = series[name];
    s.push(v);
    if (s.length > HISTORY) s.shift();
    draw(`c-${name}`, s);
  }

  function draw(id, values) {
    const svg = $(id);
    const vals = values.map((v) => (Number.isFinite(v) ? v : 0));
    const max = Math.max(1e-9, ...vals);
    // The samples there are span the width (the scale settles once HISTORY have come).
    const step = 120 / Math.max(1, vals.length - 1);
    const x0 = vals.length > 1 ? 0 : 120;
    const pts = vals.map((v, i) => `${(x0 + i * step).toFixed(2)},${(31 - (v / max) * 29).toFixed(2)}`);
    const ns = 'http://www.w3.org/2000/svg';
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.join(' '));
    const area = document.createElementNS(ns, 'polygon');
    if (pts.length) area.setAttribute('points', `${x0.toFixed(2)},32 ${pts.join(' ')} 120,32`);
    svg.replaceChildren(area, line);
  }

  // The q-quantile of the fan-out latencies observed between two samples (bucket deltas):
  // the upper bound of the bucket it falls in.
  function quantile(buckets, q) {
    const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
    if (total <= 0) return null;
    for (const [le, n] of buckets) if (n >= q * total) return le;
    return Infinity;
  }
  const ms = (s) => (s === null ? '–' : s === Infinity ? '> 100 ms' : s < 0.001 ? `≤ ${(s * 1e6).toFixed(0)} µs` : `≤ ${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`);

  async function loadMetrics() {
    // /api/metrics: the same text as /metrics (which stays open to Prometheus), behind the key.
    const res = await api('GET', '/api/metrics');
    if (res.status !== 200) return;
    const mm = parseMetrics(res.text);
    const now = performance.now();
    const conns = sum(mm, 'wshub_connections_open');
    setText('m-conns', String(conns));
    setText('m-conns-by', byLabel(mm, 'wshub_connections_open', 'endpoint').filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(' · ') || 'none open');
    push('conns', conns);
    const cur = {
      t: now,
      inn: sum(mm, 'wshub_frames_in_total'),
      out: sum(mm, 'wshub_frames_out_total'),
      pub: sum(mm, 'wshub_publishes_total'),
      buckets: (mm.get('wshub_fanout_delivery_seconds_bucket') || []).map((s) => [s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value]),
      lsum: sum(mm, 'wshub_fanout_delivery_seconds_sum'),
      lcount: sum(mm, 'wshub_fanout_delivery_seconds_count'),
    };
    if (prev) {
      const dt = Math.max(0.001, (cur.t - prev.t) / 1000);
      const rin = (cur.inn - prev.inn) / dt;
      const rout = (cur.out - prev.out) / dt;
      setText('m-rate', (rin + rout).toFixed(rin + rout < 10 ? 1 : 0));
      setText('m-rate-by', `in ${rin.toFixed(1)} · out ${rout.toFixed(1)}`);
      push('rate', rin + rout);
      const rp = (cur.pub - prev.pub) / dt;
      setText('m-pub', rp.toFixed(rp < 10 ? 1 : 0));
      setText('m-pub-by', `${cur.pub} since start`);
      push('pub', rp);
      const delta = cur.buckets.map(([le, n], i) => [le, n - (prev.buckets[i] ? prev.buckets[i][1] : 0)]);
      const n = cur.lcount - prev.lcount;
      const mean = n > 0 ? (cur.lsum - prev.lsum) / n : null;
      setText('m-lat', mean === null ? '–' : `${(mean * 1000).toFixed(mean < 0.01 ? 2 : 1)} ms`);
      setText('m-lat-by', n > 0 ? `mean of ${n} · p50 ${ms(quantile(delta, 0.5))} · p99 ${ms(quantile(delta, 0.99))}` : 'no fan-out in the last 2 s');
      push('lat', mean === null ? 0 : mean * 1000);
    }
    prev = cur;
  }

  // ------------------------------------------------------------------ server info

  async function loadInfo() {
    const r = await api('GET', '/api/info');
    if (r.status === 200) showInfo(r.json);
  }

  let shownInfo = null;
  // The header line, its uptime counted on from the last /api/info.
  function serverLine() {
    const info = shownInfo;
    if (!info) return;
    const b = info.broker || {};
    const up = info.uptime_s + Math.round((Date.now() - lastInfo) / 1000);
    $('server-line').replaceChildren(
      `wshubd ${info.version} · up ${dur(up)} · ${info.workers} workers · broker ${b.type} `,
      el('span', { class: b.up ? 'up' : 'down', text: b.up ? '(up)' : '(down)' }),
      info.mock_enabled ? ' · mock on' : ' · mock off');
  }

  function showInfo(info) {
    lastInfo = Date.now();
    shownInfo = info;
    serverLine();
    const b = info.broker || {};
    const facts = [
      ['version', info.version], ['started', info.started_at], ['uptime', dur(info.uptime_s)],
      ['workers', String(info.workers)], ['broker', `${b.type}, link ${b.up ? 'up' : 'down'}`],
      ['mock backend', info.mock_enabled ? 'on' : 'off (mock.enabled)'],
      ['config file', info.config_file || '(embedded default)'],
      ['development credentials', [info.development.api_key ? 'API key' : null, info.development.jwt_secret ? 'JWT secret' : null].filter(Boolean).join(', ') || 'none'],
    ];
    $('server-info').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
    const rows = Object.entries(info.config || {}).map(([k, v]) => el('tr', {}, el('td', { class: 'mono', text: k }), el('td', { class: 'mono', text: JSON.stringify(v) })));
    $('config').tBodies[0].replaceChildren(...rows);
  }

  // ------------------------------------------------------------------ publish

  const now = () => new Date().toISOString();
  const sender = { id: 7, name: 'Ada Lovelace', avatar_url: 'https://example.com/ada.png' };
  const message = (extra) => ({
    id: 101, chat_room_uuid: 'room-uuid-1', chat_room_kind: 'direct', chat_room_participant_id: 11, body: 'Hello from the console',
    rich_text_body: {}, sent_at: now(), created_at: now(), sender, creation_uuid: 'creation-uuid-101', chat_thread_id: 0,
    parent_message_id: 0, lesson_id: 0, edited_at: '', replies_count: 0, total_thread_participants_count: 0,
    thread_participants_preview: {}, ...extra,
  });
  const room = { id: 1, uuid: 'room-uuid-1', identifier: 'room-1', unread_messages_count: 1, chat_room_kind: 'direct', chat_room_name: 'Ada & Bob',
    chat_room_description: '', chat_room_show_history: true, other_participants_preview: [{ community_member_id: 7, name: 'Ada Lovelace' }],
    current_participant: { community_member_id: 42 }, last_message: {} };

  // Every event the APIs document (PROTOCOLS.md, seeds/), with a channel of its API's form.
  const EXAMPLES = {
    service: [
      { event: 'notification', channel: 'user:dev-user', data: { message: 'Your report is ready', level: 'info' } },
      { event: 'chat_message', channel: 'conversation:conv-123', data: { conversation_id: 'conv-123', sender_id: 'dev-user', content: 'Hello from the console' } },
      { event: 'status_update', channel: 'task:task-789', data: { entity_type: 'task', entity_id: 'task-789', status: 'completed' } },
    ],
    cable: [
      { event: 'newNotification', channel: 'notification-channel-42', data: { id: 1, action: 'mention', notifiable_title: 'Ada mentioned you' }, note: 'The document gives newNotification no payload: this one is an example.' },
      { event: 'updateNewNotificationCount', channel: 'notification-channel-42', data: { new_notifications_count: 3 } },
      { event: 'resetNewNotificationCount', channel: 'notification-channel-42', data: { new_notifications_count: 0 } },
      { event: 'chatRoomCreated', channel: 'chat-room-channel-42', data: room },
      { event: 'chatRoomUpdated', channel: 'chat-room-channel-42', data: { uuid: 'room-uuid-1', chat_room_name: 'Ada & Bob', chat_room_description: '', chat_room_show_history: true, pinned_message: {} } },
      { event: 'chatRoomDeleted', channel: 'chat-room-channel-42', data: { chat_room_uuid: 'room-uuid-1' } },
      { event: 'chatRoomRead', channel: 'chat-room-channel-42', data: { chat_room_uuid: 'room-uuid-1' } },
      { event: 'chatRoomPinned', channel: 'chat-room-channel-42', data: { chat_room_id: 1, pinned_at: now() } },
      { event: 'chatRoomUnPinned', channel: 'chat-room-channel-42', data: { chat_room_id: 1 } },
      { event: 'newMessage', label: 'newMessage (member channel)', channel: 'chat-room-channel-42', data: message({ chat_thread_replies_count: 0 }) },
      { event: 'newMessage', label: 'newMessage (room channel)', channel: 'chat-room-1-channel', data: message({ chat_thread_replies_count: 0 }) },
      { event: 'updatedMessage', label: 'updatedMessage (room channel)', channel: 'chat-room-1-channel', data: (() => { const m = message({ edited_at: now(), body: 'Hello (edited)' }); delete m.chat_room_kind; return m; })() },
      { event: 'deletedMessage', label: 'deletedMessage (room channel)', channel: 'chat-room-1-channel', data: { id: 101, parent_message: (() => { const m = message({}); delete m.chat_room_kind; return m; })() } },
      { event: 'newMessage', label: 'newMessage (threads channel)', channel: 'chat-community-member-42-threads-channel', data: message({ id: 102, chat_thread_id: 5, parent_message_id: 101, chat_thread_replies_count: 1 }) },
      { event: 'updatedMessage', label: 'updatedMessage (threads channel)', channel: 'chat-community-member-42-threads-channel', data: (() => { const m = message({ id: 102, chat_thread_id: 5, parent_message_id: 101, edited_at: now() }); delete m.chat_room_kind; return m; })() },
      { event: 'deletedMessage', label: 'deletedMessage (threads channel)', channel: 'chat-community-member-42-threads-channel', data: { id: 102, parent_message: { id: 101, chat_room_participant_id: '11', rich_text_body: {}, created_at: now(), sender, creation_uuid: 'creation-uuid-101', chat_thread_id: 5, parent_message_id: 0, lesson_id: 0, edited_at: '', replies_count: 0, total_thread_participants_count: 2, thread_participants_preview: {} } } },
      { event: 'chatThreadRead', channel: 'chat-community-member-42-threads-channel', data: { chat_thread_id: 5 } },
    ],
    flow: [
      { event: 'message.received', label: 'message.received (messages)', channel: 'thread:jane.doe', data: { messages: [{ fallback: 'Hello from the console', silent: false, replyTo: '', originator: { userId: 'flowai|system', name: 'system', role: 'bot' }, actions: [], responses: [{ type: 'text', delay: 0, payload: { text: 'Hello from the console' } }] }] } },
      { event: 'message.received', label: 'message.received (text)', channel: 'thread:jane.doe', data: { text: 'Hello from the console' } },
      { event: 'agent.typing', channel: 'thread:jane.doe', data: { threadId: 'jane.doe' } },
      { event: 'activities.created', channel: 'thread:jane.doe', data: { threadId: 'jane.doe', activities: [] } },
      { event: 'activities.delivered', channel: 'thread:jane.doe', data: { threadId: 'jane.doe' } },
      { event: 'interruption.occurred', channel: 'thread:jane.doe', data: { threadId: 'jane.doe' } },
      { event: 'message.delivered', channel: 'thread:jane.doe', data: { threadId: 'jane.doe', speech: 'Hello', originator: { name: 'Jane Doe', role: 'external' }, metadata: {} } },
      { event: 'secret.generated', channel: 'thread:jane.doe', data: { secret: 'example-secret' } },
    ],
  };
  const API_NAMES = { service: 'B — service (/api/ws)', cable: 'C — Circle (/cable)', flow: 'D — Flow (/ws/…)' };

  function fillExamples() {
    const list = EXAMPLES[$('pub-api').value];
    $('pub-example').replaceChildren(...list.map((x, i) => el('option', { value: i, text: x.label || x.event })));
    applyExample();
  }
  function applyExample() {
    const x = EXAMPLES[$('pub-api').value][Number($('pub-example').value) || 0];
    $('pub-channel').value = x.channel;
    $('pub-event').value = x.event;
    $('pub-data').value = json(x.data);
    $('pub-note').textContent = x.note || '';
  }
  function syncMode() {
    const send = $('pub-mode').value === 'send';
    $('pub-conn-l').hidden = !send;
    $('pub-conn').required = send;
    $('pub-channel').required = !send;
    $('pub-channel-l').firstChild.textContent = send ? 'Channel (optional: only its subscriptions) ' : 'Channel ';
  }

  async function publish(ev) {
    ev.preventDefault();
    const out = $('pub-result');
    let data;
    try { data = JSON.parse($('pub-data').value || '{}'); } catch (e) { out.textContent = `Data is not JSON: ${e.message}`; return; }
    const body = { event: $('pub-event').value, data };
    const channel = $('pub-channel').value.trim();
    let r;
    if ($('pub-mode').value === 'send') {
      if (channel) body.channel = channel;
      r = await api('POST', `/api/connections/${encodeURIComponent($('pub-conn').value)}/send`, body);
      out.textContent = r.status === 200 ? `sent: ${r.json.sent} frame(s)` : errText(r);
    } else {
      body.channel = channel;
      r = await api('POST', '/api/publish', body);
      out.textContent = r.status === 200 ? `delivered: ${r.json.delivered === null ? '(by the broker)' : r.json.delivered}` : errText(r);
    }
    out.className = r.status === 200 ? 'up' : 'error';
    schedule(200);
  }

  // ------------------------------------------------------------------ tokens

  async function mint(ev) {
    ev.preventDefault();
    const body = { sub: $('tok-sub').value };
    if ($('tok-ttl').value.trim()) body.ttl = /^\d+$/.test($('tok-ttl').value.trim()) ? Number($('tok-ttl').value) : $('tok-ttl').value.trim();
    const claims = $('tok-claims').value.trim();
    if (claims) {
      try { body.claims = JSON.parse(claims); } catch (e) { $('tok-result').textContent = `claims is not JSON: ${e.message}`; return; }
    }
    const r = await api('POST', '/api/tokens', body);
    $('tok-result').textContent = r.status === 200 ? `${r.json.token}\n(expires ${r.json.expires_at})` : errText(r);
    $('tok-copy').disabled = r.status !== 200;
    $('tok-copy').dataset.token = r.status === 200 ? r.json.token : '';
  }

  // ------------------------------------------------------------------ faults and Circle

  // The mock API's requests, as the README's curls make them: a path under /api and a body.
  const FAULTS = [
    { label: 'Reject the next cable subscription(s)', path: 'faults/cable/reject', body: { channel: 'ChatRoomChannel', count: 1 } },
    { label: 'Moderation verdict for a reference', path: 'faults/moderation', body: { reference: 'comment-1234', verdict: { action: 'delete', score: 0.97 } } },
    { label: 'Moderation error for a pattern', path: 'faults/moderation', body: { pattern: 'timeout me', success: false, message: 'engine timeout' } },
    { label: 'Flow server event to a thread', path: 'flow/threads/jane.doe/events', body: { type: 'agent.typing', payload: { threadId: 'jane.doe' } } },
    { label: 'Latency (service, out)', path: 'faults/latency', body: { api: 'service', direction: 'out', ms: 200, jitter_ms: 50 } },
    { label: 'Drop 10% (cable, in)', path: 'faults/drop', body: { api: 'cable', direction: 'in', rate: 0.1 } },
    { label: 'Refuse new cable connections (10 s)', path: 'faults/refuse', body: { api: 'cable', status: 503, for_ms: 10000 } },
  ];
  const CIRCLE = [
    { label: 'Member', method: 'POST', path: 'members', body: { id: 1, name: 'Ada', avatar_url: 'https://example.com/ada.png' } },
    { label: 'Create a room', method: 'POST', path: 'rooms', body: { participants: [1, { id: 42, name: 'Bob' }], kind: 'direct' } },
    { label: 'Message', method: 'POST', path: 'rooms/1/messages', body: { sender: 1, body: 'Hello Bob' } },
    { label: 'Reply', method: 'POST', path: 'rooms/1/messages', body: { sender: 42, body: 'Hi!', parent_id: 1 } },
    { label: 'Edit a message', method: 'PATCH', path: 'rooms/1/messages/2', body: { body: 'Hi Ada!' } },
    { label: 'React', method: 'POST', path: 'rooms/1/messages/2/reactions', body: { member: 1, emoji: '👍' } },
    { label: 'Delete a message', method: 'DELETE', path: 'rooms/1/messages/2' },
    { label: 'Read', method: 'POST', path: 'rooms/1/read', body: { member: 42 } },
    { label: 'Pin', method: 'POST', path: 'rooms/1/pin', body: { member: 42 } },
    { label: 'Unpin', method: 'POST', path: 'rooms/1/unpin', body: { member: 42 } },
    { label: 'Update the room', method: 'PATCH', path: 'rooms/1', body: { name: 'Ada & Bob', pinned_message_id: 1 } },
    { label: 'Notification', method: 'POST', path: 'notifications', body: { member: 42, action: 'mention', notifiable_title: 'Ada mentioned you' } },
    { label: 'Notification count', method: 'POST', path: 'notifications/count', body: { member: 42, count: 3 } },
    { label: 'Reset notifications', method: 'POST', path: 'notifications/reset', body: { member: 42 } },
    { label: 'Show the room', method: 'GET', path: 'rooms/1' },
    { label: 'List rooms', method: 'GET', path: 'rooms' },
    { label: 'Delete the room', method: 'DELETE', path: 'rooms/1' },
  ];

  function applyFault() {
    const f = FAULTS[Number($('fault-kind').value) || 0];
    $('fault-body').value = json(f.body);
  }
  async function setFault(ev) {
    ev.preventDefault();
    const f = FAULTS[Number($('fault-kind').value) || 0];
    const r = await api('POST', `/api/${f.path}`, $('fault-body').value || '{}');
    $('faults-error').textContent = r.status === 200 ? '' : `POST /api/${f.path}: ${errText(r)}`;
    if (r.status === 200) listFaults();
  }
  async function listFaults() {
    const r = await api('GET', '/api/faults');
    if (r.status !== 200) { $('faults-error').textContent = `GET /api/faults: ${errText(r)}`; return; }
    const list = Array.isArray(r.json) ? r.json : (r.json.faults || []);
    $('faults').replaceChildren(...(list.length ? list.map((f) => el('li', {}, el('span', { text: JSON.stringify(f) }),
      el('button', { type: 'button', class: 'ghost', 'aria-label': `Remove fault ${f.id}`, onclick: async () => {
        const d = await api('DELETE', `/api/faults/${f.id}`);
        $('faults-error').textContent = d.status === 200 ? '' : errText(d);
        listFaults();
      }, text: 'Remove' }))) : [el('li', { class: 'muted', text: 'No fault set.' })]));
  }
  async function clearFaults() {
    const r = await api('DELETE', '/api/faults');
    $('faults-error').textContent = r.status === 200 ? '' : `DELETE /api/faults: ${errText(r)}`;
    listFaults();
  }

  function applyCircle() {
    const c = CIRCLE[Number($('circle-action').value) || 0];
    $('circle-method').value = c.method;
    $('circle-path').value = c.path;
    $('circle-body').value = c.body ? json(c.body) : '';
  }
  async function runCircle(ev) {
    ev.preventDefault();
    const method = $('circle-method').value;
    const path = `/api/circle/${$('circle-path').value.replace(/^\/+/, '')}`;
    const text = $('circle-body').value.trim();
    const r = await api(method, path, method === 'GET' || (method === 'DELETE' && !text) ? undefined : (text || '{}'));
    $('circle-error').textContent = r.status === 200 ? '' : `${method} ${path}: ${errText(r)}`;
    $('circle-result').textContent = r.json ? json(r.json) : r.text;
  }
  async function resetMock() {
    const r = await api('POST', '/api/reset');
    $('circle-error').textContent = r.status === 200 ? '' : `POST /api/reset: ${errText(r)}`;
    $('circle-result').textContent = r.json ? json(r.json) : r.text;
  }

  // ------------------------------------------------------------------ scenarios

  const scenRows = new Map(); // id -> {li, text}: kept across polls (a focused Stop stays)

  async function loadScenarios() {
    const r = await api('GET', '/api/scenarios');
    if (r.status !== 200) { $('scenarios-error').textContent = `GET /api/scenarios: ${errText(r)}`; return; }
    if ($('scenarios-error').textContent.startsWith('GET')) $('scenarios-error').textContent = '';
    const list = r.json.scenarios || [];
    setText('scenarios-count', String(list.filter((x) => x.state === 'running').length));
    const ul = $('scenarios');
    const seen = new Set();
    list.forEach((x, i) => {
      seen.add(x.id);
      let row = scenRows.get(x.id);
      if (!row) {
        const text = el('span');
        const stop = el('button', { type: 'button', class: 'ghost', 'aria-label': `Stop scenario ${x.id}`, text: 'Stop', onclick: async () => {
          const d = await api('DELETE', `/api/scenarios/${x.id}`);
          $('scenarios-error').textContent = d.status === 200 ? '' : `DELETE /api/scenarios/${x.id}: ${errText(d)}`;
          loadScenarios();
        } });
        row = { li: el('li', { 'data-id': x.id }, text, stop), text, stop };
        scenRows.set(x.id, row);
      }
      if (ul.children[i] !== row.li) ul.insertBefore(row.li, ul.children[i] || null);
      row.text.textContent = `#${x.id} ${x.name || ''} — ${x.state}, ${x.passes} pass(es), ${x.requests} request(s)${x.error ? ` — ${typeof x.error === 'string' ? x.error : JSON.stringify(x.error)}` : ''}`;
      row.stop.hidden = x.state !== 'running' && x.state !== 'queued';
    });
    for (const [id, row] of scenRows) if (!seen.has(id)) { row.li.remove(); scenRows.delete(id); }
  }

  async function startScenario(ev) {
    ev.preventDefault();
    const r = await api('POST', '/api/scenarios', { file: $('scenario-file').value.trim() });
    $('scenarios-error').textContent = r.status >= 200 && r.status < 300 ? '' : `POST /api/scenarios: ${errText(r)}`;
    loadScenarios();
  }

  // ------------------------------------------------------------------ the traffic tail

  let tail = null;         // {ctl: AbortController}
  let paused = false;
  let held = [];
  let heldDropped = 0;

  function tailQuery() {
    const q = new URLSearchParams();
    if ($('tail-api').value) q.set('api', $('tail-api').value);
    if ($('tail-conn').value) q.set('conn', $('tail-conn').value);
    if ($('tail-channel').value.trim()) q.set('channel', $('tail-channel').value.trim());
    if ($('tail-dir').value) q.set('dir', $('tail-dir').value);
    if ($('tail-kind').value) q.set('kind', $('tail-kind').value);
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  function stopTail() {
    if (tail) tail.ctl.abort();
    tail = null;
    setText('tail-state', 'off');
  }

  async function startTail() {
    stopTail();
    const ctl = new AbortController();
    const me = { ctl };
    tail = me;
    $('tail-error').textContent = '';
    setText('tail-state', 'connecting');
    let res;
    try {
      res = await fetch(`/api/tap${tailQuery()}`, { headers: { Authorization: `Bearer ${key}`, Accept: 'text/event-stream' }, signal: ctl.signal, cache: 'no-store' });
    } catch (e) {
      if (tail === me) { setText('tail-state', 'off'); $('tail-error').textContent = `The tap: ${e.message}`; }
      return;
    }
    if (!res.ok || !res.body) {
      const text = await res.text().catch(() => '');
      let j = null;
      try { j = JSON.parse(text); } catch { /* not JSON */ }
      if (tail === me) {
        setText('tail-state', 'off');
        $('tail-error').textContent = `GET /api/tap: ${errText({ status: res.status, json: j, text })}`;
      }
      return;
    }
    setText('tail-state', paused ? 'paused' : 'live');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
          if (!data) continue;
          try { onTap(JSON.parse(data)); } catch { /* a line that is not JSON: skipped */ }
        }
        if (buf.length > 1 << 20) buf = ''; // never hold more than a megabyte of a broken stream
      }
    } catch (e) {
      if (tail === me && e.name !== 'AbortError') $('tail-error').textContent = `The tap ended: ${e.message}`;
    }
    if (tail === me) {
      setText('tail-state', 'ended');
      // The server went away or restarted: try again in a while, as long as we are signed in.
      setTimeout(() => { if (tail === me && live) startTail(); }, 3000);
    }
  }

  function isPing(ev) {
    if (ev.kind !== 'frame') return false;
    if (ev.opcode === 'ping' || ev.opcode === 'pong') return true;
    return ev.api === 'cable' && typeof ev.data === 'string' && ev.data.startsWith('{"type":"ping"');
  }

  function onTap(ev) {
    if (ev.kind === 'open') return;
    if (!$('tail-pings').checked && isPing(ev)) return;
    if (paused) {
      held.push(ev);
      if (held.length > PAUSED_MAX) { held.shift(); heldDropped++; }
      setText('tail-state', `paused (${held.length + heldDropped} new)`);
      return;
    }
    render([ev]);
  }

  function line(ev) {
    const t = (ev.t || '').slice(11, 23);
    if (ev.kind === 'frame') {
      const payload = ev.data !== undefined ? ev.data : ev.b64 !== undefined ? `base64 ${ev.b64}` : '';
      return el('li', { 'data-conn': ev.conn, 'data-dir': ev.dir },
        el('span', { class: 't', text: `${t} ` }),
        el('span', { class: ev.dir, text: ev.dir === 'in' ? '→ in ' : '← out' }),
        ` ${ev.api} #${ev.conn} ${ev.opcode}${ev.code ? ` ${ev.code}` : ''}${ev.channel ? ` [${ev.channel}]` : ''} `,
        payload + (ev.truncated ? ' …' : ''));
    }
    if (ev.kind === 'publish') {
      return el('li', { 'data-channel': ev.channel },
        el('span', { class: 't', text: `${t} ` }), el('span', { class: 'pub', text: 'publish' }),
        ` ${ev.channel} ${ev.event} ${typeof ev.data === 'string' ? ev.data : JSON.stringify(ev.data)} → ${ev.delivered === null ? 'broker' : ev.delivered}`);
    }
    if (ev.kind === 'dropped') return el('li', { class: 'note', text: `${t} the tap dropped ${ev.n} event(s): the console could not keep up` });
    return el('li', { text: `${t} ${JSON.stringify(ev)}` });
  }

  function render(events) {
    const ol = $('tail');
    const atBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
    ol.append(...events.map(line));
    while (ol.children.length > TAIL_MAX) ol.firstChild.remove();
    if (atBottom) ol.scrollTop = ol.scrollHeight;
  }

  function togglePause() {
    paused = !paused;
    $('tail-pause').setAttribute('aria-pressed', String(paused));
    $('tail-pause').textContent = paused ? 'Resume' : 'Pause';
    if (!paused) {
      if (heldDropped) render([{ kind: 'dropped', n: heldDropped, t: new Date().toISOString() }]);
      render(held.slice(-TAIL_MAX));
      held = [];
      heldDropped = 0;
      $('tail').scrollTop = $('tail').scrollHeight;
    }
    if (tail) setText('tail-state', paused ? 'paused' : 'live');
  }

  // ------------------------------------------------------------------ wiring

  function init() {
    $('signin-form').addEventListener('submit', (ev) => { ev.preventDefault(); signIn($('key').value.trim()); });
    $('signout').addEventListener('click', () => signOut(''));
    $('conns-filter').addEventListener('submit', (ev) => ev.preventDefault());
    $('conns-api').addEventListener('change', () => schedule(0));

    $('pub-api').replaceChildren(...Object.keys(EXAMPLES).map((a) => el('option', { value: a, text: API_NAMES[a] })));
    $('pub-api').addEventListener('change', fillExamples);
    $('pub-example').addEventListener('change', applyExample);
    $('pub-mode').addEventListener('change', syncMode);
    $('publish-form').addEventListener('submit', publish);
    fillExamples();
    syncMode();

    $('token-form').addEventListener('submit', mint);
    $('tok-copy').addEventListener('click', () => navigator.clipboard && navigator.clipboard.writeText($('tok-copy').dataset.token || ''));

    $('fault-kind').replaceChildren(...FAULTS.map((f, i) => el('option', { value: i, text: f.label })));
    $('fault-kind').addEventListener('change', applyFault);
    $('fault-form').addEventListener('submit', setFault);
    $('faults-refresh').addEventListener('click', listFaults);
    $('faults-clear').addEventListener('click', clearFaults);
    applyFault();

    $('circle-action').replaceChildren(...CIRCLE.map((c, i) => el('option', { value: i, text: `${c.label} — ${c.method} ${c.path}` })));
    $('circle-action').addEventListener('change', applyCircle);
    $('circle-form').addEventListener('submit', runCircle);
    $('circle-reset').addEventListener('click', resetMock);
    applyCircle();

    $('scenario-form').addEventListener('submit', startScenario);

    $('tail-form').addEventListener('submit', (ev) => { ev.preventDefault(); startTail(); });
    $('tail-pause').addEventListener('click', togglePause);
    $('tail-clear').addEventListener('click', () => { $('tail').replaceChildren(); held = []; heldDropped = 0; });

    if (key) signIn(key);
    else $('key').focus();
  }

  init();
})();
