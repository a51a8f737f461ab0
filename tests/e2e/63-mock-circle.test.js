'use strict';
// The mock backend's Circle domain (README "Mock backend", Circle): /api/circle/... drives an
// in-memory model of members, rooms, messages and notifications, and every action publishes the
// events of seeds/circle-websockets.txt on Circle's queues, to real @rails/actioncable consumers
// (and a raw `ws` client for the wire form). What this file pins down:
//  - a message posted through the API reaches both participants: newMessage on each one's
//    ChatRoomChannel and on the room's Chats::RoomChannel, every documented field present and typed
//    as the document types it (integers for ids and counts, ISO timestamps, objects, arrays);
//  - a reply reaches Chats::RoomChannel and the thread participants' CommunityMemberThreadsChannel,
//    never ChatRoomChannel; edits, reactions and deletes of a thread message the same way;
//  - chatRoomCreated / Updated / Deleted / Read / Pinned / UnPinned, chatThreadRead, and the three
//    NotificationChannel events, with their documented fields;
//  - Chats::RoomChannel to a room the model knows: participants confirmed (by id or uuid: the uuid is
//    routed to the id's queue), anyone else rejected; rooms the model does not know keep the open rule;
//  - errors name the field; the API key and mock.enabled gate it; the bounds drop or refuse, counted.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const ActionCable = require('@rails/actioncable');

const { start } = require('./lib/server');
const { httpRequest, now, parseMetrics } = require('./lib/util');

const SECRET = crypto.randomBytes(24).toString('hex');
const API_KEY = `circle-e2e-${crypto.randomBytes(8).toString('hex')}`;
const ENV = { WSHUB_WORKERS: '2', WSHUB_JWT_SECRET: SECRET, WSHUB_API_KEY: API_KEY };
const T = { timeout: 30000 };

// ------------------------------------------------------------------ tokens, HTTP

const b64u = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
function memberToken(id) {
  const head = `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u({ sub: String(id), community_member_id: id, iat: now(), exp: now() + 600 })}`;
  return `${head}.${crypto.createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

function api(inst, method, path, body, { key = API_KEY } = {}) {
  return httpRequest(inst, { method, path: `/api/circle/${path}`, body, headers: key ? { Authorization: `Bearer ${key}` } : {} });
}
async function apiOk(inst, method, path, body) {
  const r = await api(inst, method, path, body);
  assert.equal(r.status, 200, `${method} ${path}: ${r.status} ${r.text}`);
  assert.equal(r.json.ok, true);
  return r.json;
}

// ------------------------------------------------------------------ @rails/actioncable in Node

// The official client is written for browsers: a `ws` subclass sends the Authorization header, and
// its ConnectionMonitor's visibilitychange listener needs add/removeEventListener.
if (typeof globalThis.addEventListener !== 'function') globalThis.addEventListener = () => {};
if (typeof globalThis.removeEventListener !== 'function') globalThis.removeEventListener = () => {};
let nextHeaders = {};
class HeaderWebSocket extends WebSocket {
  constructor(url, protocols) { super(url, protocols, { headers: nextHeaders }); }
}
ActionCable.adapters.WebSocket = HeaderWebSocket;
ActionCable.adapters.logger = { log() {} };

// Every callback of every subscription, in order; waits are event-driven and bounded.
class Events {
  constructor(label) { this.label = label; this.q = []; this.waiters = []; }
  push(e) { this.q.push(e); this.pump(); }
  pump() {
    for (const w of [...this.waiters]) {
      const i = this.q.findIndex(w.pred);
      if (i >= 0) { const [e] = this.q.splice(i, 1); w.done(e); }
    }
  }
  take(pred, what, ms = 5000) {
    return new Promise((resolve, reject) => {
      const w = { pred };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.label}: timed out after ${ms} ms waiting for ${what}; queued: ${JSON.stringify(this.q).slice(0, 600)}`));
      }, ms);
      w.done = (e) => { clearTimeout(timer); this.waiters.splice(this.waiters.indexOf(w), 1); resolve(e); };
      this.waiters.push(w);
      this.pump();
    });
  }
}

// A member's consumer: sub(name, params) subscribes and resolves once confirmed (or rejected).
function consumer(inst, member) {
  nextHeaders = { Authorization: `Bearer ${memberToken(member)}` };
  const c = ActionCable.createConsumer(`${inst.wsUrl}/cable`);
  c.connect(); // the socket is made now, with this member's headers
  const events = new Events(`member ${member}`);
  const subs = {};
  const self = {
    member, events, consumer: c,
    sub(name, params) {
      subs[name] = c.subscriptions.create(params, {
        connected() { events.push({ sub: name, kind: 'connected' }); },
        rejected() { events.push({ sub: name, kind: 'rejected' }); },
        received(d) { events.push({ sub: name, kind: 'received', data: d }); },
      });
      return events.take((e) => e.sub === name && (e.kind === 'connected' || e.kind === 'rejected'), `${name} answered`).then((e) => e.kind);
    },
    // The next event received on that subscription.
    next(name, what = `an event on ${name}`, ms) {
      return events.take((e) => e.sub === name && e.kind === 'received', what, ms).then((e) => e.data);
    },
    close() { c.disconnect(); },
  };
  return self;
}

const memberChannels = (id) => ({
  member: { channel: 'ChatRoomChannel', community_member_id: id },
  threads: { channel: 'Chats::CommunityMemberThreadsChannel', community_member_id: id },
  notifications: { channel: 'NotificationChannel', community_member_id: id },
});

// ------------------------------------------------------------------ the document's types

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const TYPES = {
  number: (v) => Number.isInteger(v),
  string: (v) => typeof v === 'string',
  iso: (v) => typeof v === 'string' && ISO.test(v),
  boolean: (v) => typeof v === 'boolean',
  object: isObject,
  'object[]': (v) => Array.isArray(v) && v.every(isObject),
};
// seeds/circle-websockets.txt, interface by interface ("iso": a string the document calls a time).
const MESSAGE_COMMON = {
  id: 'number', chat_room_uuid: 'string', chat_room_participant_id: 'number', body: 'string', rich_text_body: 'object',
  sent_at: 'iso', created_at: 'iso', sender: 'object', creation_uuid: 'string', chat_thread_id: 'number',
  parent_message_id: 'number', lesson_id: 'number', edited_at: 'string', replies_count: 'number',
  total_thread_participants_count: 'number', thread_participants_preview: 'object',
};
const SCHEMA = {
  JSONMessage: { ...MESSAGE_COMMON, chat_room_kind: 'string', chat_thread_replies_count: 'number' },
  UpdatedMessage: MESSAGE_COMMON,
  ThreadParentMessage: {
    id: 'number', chat_room_participant_id: 'string', rich_text_body: 'object', created_at: 'iso', sender: 'object',
    creation_uuid: 'string', chat_thread_id: 'number', parent_message_id: 'number', lesson_id: 'number', edited_at: 'string',
    replies_count: 'number', total_thread_participants_count: 'number', thread_participants_preview: 'object',
  },
  ChatRoom: {
    id: 'number', uuid: 'string', identifier: 'string', unread_messages_count: 'number', chat_room_kind: 'string',
    chat_room_name: 'string', chat_room_description: 'string', chat_room_show_history: 'boolean',
    other_participants_preview: 'object[]', current_participant: 'object', last_message: 'object',
  },
  SimplifiedChatRoom: {
    uuid: 'string', chat_room_name: 'string', chat_room_description: 'string', chat_room_show_history: 'boolean',
    pinned_message: 'object',
  },
};

function assertShape(data, schema, what) {
  assert.ok(isObject(data), `${what}: not an object: ${JSON.stringify(data)}`);
  for (const [field, type] of Object.entries(schema)) {
    assert.ok(field in data, `${what}: ${field} is missing: ${JSON.stringify(data)}`);
    assert.ok(TYPES[type](data[field]), `${what}: ${field} must be a ${type}, got ${JSON.stringify(data[field])}`);
  }
}

// An Action Cable message of Circle's: {event, data}.
function assertEvent(msg, event, schema, what) {
  assert.deepEqual(Object.keys(msg).sort(), ['data', 'event'], `${what}: ${JSON.stringify(msg)}`);
  assert.equal(msg.event, event, `${what}: ${JSON.stringify(msg).slice(0, 300)}`);
  if (typeof schema === 'string') assertShape(msg.data, SCHEMA[schema], `${what} (${schema})`);
  else if (schema) assertShape(msg.data, schema, what);
  return msg.data;
}

// ------------------------------------------------------------------ one server for the file

let inst;
let seq = 0;
const newMember = () => 7000 + (process.pid % 1000) * 100 + (seq++);
before(async () => { inst = await start({ env: ENV }); });
after(async () => { if (inst) await inst.teardown(); });

// Two members subscribed to their three channels, a third who is not in the room.
async function cast() {
  const a = newMember(); const b = newMember(); const c = newMember();
  const A = consumer(inst, a); const B = consumer(inst, b); const C = consumer(inst, c);
  for (const [X, id] of [[A, a], [B, b], [C, c]]) {
    for (const [name, params] of Object.entries(memberChannels(id))) assert.equal(await X.sub(name, params), 'connected', `${id} ${name}`);
  }
  return { a, b, c, A, B, C, close() { A.close(); B.close(); C.close(); } };
}

test('a message posted through the API reaches both participants, typed as the document says', T, async () => {
  const s = await cast();
  try {
    const created = await apiOk(inst, 'POST', 'rooms', { participants: [{ id: s.a, name: 'Ada', avatar_url: 'https://example.com/a.png' }, { id: s.b, name: 'Bob' }] });
    const room = created.room;
    assert.equal(room.chat_room_kind, 'direct');
    assert.ok(Number.isInteger(room.id) && /^[0-9a-f-]{36}$/.test(room.uuid), JSON.stringify(room));
    assert.deepEqual(created.events.map((e) => [e.channel, e.event]),
      [[`chat-room-channel-${s.a}`, 'chatRoomCreated'], [`chat-room-channel-${s.b}`, 'chatRoomCreated']]);
    for (const [X, me, other, otherName] of [[s.A, s.a, s.b, 'Bob'], [s.B, s.b, s.a, 'Ada']]) {
      const d = assertEvent(await X.next('member', 'chatRoomCreated'), 'chatRoomCreated', 'ChatRoom', `chatRoomCreated to ${me}`);
      assert.equal(d.uuid, room.uuid);
      assert.equal(d.id, room.id);
      assert.equal(d.unread_messages_count, 0);
      assert.equal(d.current_participant.community_member_id, me);
      assert.deepEqual(d.other_participants_preview.map((p) => p.community_member_id), [other]);
      assert.equal(d.chat_room_name, otherName, 'a direct room without a name shows the other member');
    }
    // Both subscribe to the room (one by id, one by uuid: the same queue); the outsider is rejected either way.
    assert.equal(await s.A.sub('room', { channel: 'Chats::RoomChannel', chat_room_id: room.id }), 'connected');
    assert.equal(await s.B.sub('room', { channel: 'Chats::RoomChannel', chat_room_id: room.uuid }), 'connected');
    assert.equal(await s.C.sub('room', { channel: 'Chats::RoomChannel', chat_room_id: room.id }), 'rejected');
    assert.equal(await s.C.sub('room-uuid', { channel: 'Chats::RoomChannel', chat_room_id: room.uuid }), 'rejected');

    const posted = await apiOk(inst, 'POST', `rooms/${room.uuid}/messages`, { sender: s.a, body: 'Hello Bob' });
    assert.deepEqual(posted.events.map((e) => [e.channel, e.event, e.delivered]), [
      [`chat-room-${room.id}-channel`, 'newMessage', 2],
      [`chat-room-channel-${s.a}`, 'newMessage', 1],
      [`chat-room-channel-${s.b}`, 'newMessage', 1],
    ]);
    for (const X of [s.A, s.B]) {
      for (const sub of ['member', 'room']) {
        const d = assertEvent(await X.next(sub, `newMessage on ${sub}`), 'newMessage', 'JSONMessage', `member ${X.member} ${sub}`);
        assert.equal(d.id, posted.message.id);
        assert.equal(d.body, 'Hello Bob');
        assert.equal(d.chat_room_uuid, room.uuid);
        assert.equal(d.chat_room_kind, 'direct');
        assert.equal(d.sender.community_member_id, s.a);
        assert.equal(d.sender.name, 'Ada');
        assert.equal(d.sender.avatar_url, 'https://example.com/a.png');
        assert.equal(d.chat_room_participant_id, room.participants[0].id);
        assert.equal(d.parent_message_id, 0);
        assert.ok(Math.abs(Date.parse(d.created_at) - Date.now()) < 60000, d.created_at);
        assert.deepEqual(d, posted.message, 'every queue carries the same JSONMessage');
      }
    }
    // Bob has one unread message, Ada (the sender) none.
    const state = await apiOk(inst, 'GET', `rooms/${room.id}`);
    assert.deepEqual(state.room.participants.map((p) => [p.community_member_id, p.unread_messages_count]), [[s.a, 0], [s.b, 1]]);
    assert.equal(state.room.messages.length, 1);
  } finally { s.close(); }
});

test('a reply reaches the room and the thread channels, never ChatRoomChannel; edits, reactions, deletes follow it', T, async () => {
  const s = await cast();
  try {
    const { room } = await apiOk(inst, 'POST', 'rooms', { participants: [s.a, s.b], kind: 'group', name: 'Two' });
    for (const X of [s.A, s.B]) await X.next('member', 'chatRoomCreated');
    assert.equal(await s.A.sub('room', { channel: 'Chats::RoomChannel', chat_room_id: room.id }), 'connected');
    const parent = (await apiOk(inst, 'POST', `rooms/${room.id}/messages`, { sender: s.a, body: 'a question', creation_uuid: 'c0ffee00-0000-4000-8000-000000000001' })).message;
    assert.equal(parent.creation_uuid, 'c0ffee00-0000-4000-8000-000000000001');
    for (const X of [s.A, s.B]) await X.next('member', 'the parent on ChatRoomChannel');
    await s.A.next('room', 'the parent on the room');

    const reply = await apiOk(inst, 'POST', `rooms/${room.id}/messages`, { sender: s.b, body: 'an answer', parent_id: parent.id });
    assert.deepEqual(reply.events.map((e) => [e.channel, e.event]), [
      [`chat-room-${room.id}-channel`, 'newMessage'],
      [`chat-community-member-${s.a}-threads-channel`, 'newMessage'],
      [`chat-community-member-${s.b}-threads-channel`, 'newMessage'],
    ]);
    const onRoom = assertEvent(await s.A.next('room', 'the reply on the room'), 'newMessage', 'JSONMessage', 'reply on the room');
    assert.equal(onRoom.parent_message_id, parent.id);
    assert.ok(onRoom.chat_thread_id > 0);
    assert.equal(onRoom.chat_thread_replies_count, 1);
    assert.equal(onRoom.total_thread_participants_count, 2);
    assert.deepEqual(Object.keys(onRoom.thread_participants_preview).sort(), [String(s.a), String(s.b)].sort());
    for (const X of [s.A, s.B]) {
      const d = assertEvent(await X.next('threads', 'the reply on the threads channel'), 'newMessage', 'JSONMessage', `reply to ${X.member}'s threads`);
      assert.deepEqual(d, onRoom);
    }
    // ChatRoomChannel got no reply: the next thing it carries is the next top-level message.
    const after = (await apiOk(inst, 'POST', `rooms/${room.id}/messages`, { sender: s.b, body: 'top level again' })).message;
    for (const X of [s.A, s.B]) assert.equal((await X.next('member', 'the sentinel')).data.id, after.id, 'the reply must not reach ChatRoomChannel');
    await s.A.next('room', 'the sentinel on the room');

    // Edit the reply: updatedMessage on the room and both threads channels.
    const edited = await apiOk(inst, 'PATCH', `rooms/${room.id}/messages/${reply.message.id}`, { body: 'a better answer' });
    assert.deepEqual(edited.events.map((e) => e.event), ['updatedMessage', 'updatedMessage', 'updatedMessage']);
    const upd = assertEvent(await s.A.next('room', 'updatedMessage'), 'updatedMessage', 'UpdatedMessage', 'edit on the room');
    assert.equal(upd.body, 'a better answer');
    assert.match(upd.edited_at, ISO);
    for (const X of [s.A, s.B]) assertEvent(await X.next('threads', 'updatedMessage'), 'updatedMessage', 'UpdatedMessage', 'edit on the threads');

    // A reaction on the parent (a thread's parent is in the thread).
    await apiOk(inst, 'POST', `rooms/${room.id}/messages/${parent.id}/reactions`, { member: s.b, emoji: '👍' });
    const reacted = assertEvent(await s.A.next('room', 'reaction'), 'updatedMessage', 'UpdatedMessage', 'reaction');
    assert.deepEqual(reacted.reactions, [{ emoji: '👍', community_member_ids: [s.b], count: 1 }]);
    for (const X of [s.A, s.B]) await X.next('threads', 'the reaction on the threads');

    // Delete the reply: deletedMessage {id, parent_message} with the parent's new counts.
    await apiOk(inst, 'DELETE', `rooms/${room.id}/messages/${reply.message.id}`);
    const del = assertEvent(await s.A.next('room', 'deletedMessage'), 'deletedMessage', { id: 'number', parent_message: 'object' }, 'delete on the room');
    assert.equal(del.id, reply.message.id);
    assertShape(del.parent_message, SCHEMA.UpdatedMessage, 'the room\'s parent_message');
    assert.equal(del.parent_message.id, parent.id);
    assert.equal(del.parent_message.replies_count, 0);
    for (const X of [s.A, s.B]) {
      const t = assertEvent(await X.next('threads', 'deletedMessage'), 'deletedMessage', { id: 'number', parent_message: 'object' }, 'delete on threads');
      assertShape(t.parent_message, SCHEMA.ThreadParentMessage, 'the threads channel\'s parent_message');
    }

    // Reading the thread: chatThreadRead to the reader's threads channel.
    await apiOk(inst, 'POST', `rooms/${room.id}/read`, { member: s.b, chat_thread_id: onRoom.chat_thread_id });
    assert.deepEqual(assertEvent(await s.B.next('threads', 'chatThreadRead'), 'chatThreadRead', { chat_thread_id: 'number' }, 'chatThreadRead').chat_thread_id,
      onRoom.chat_thread_id);
  } finally { s.close(); }
});

test('read, pin, unpin, rename and delete a room: the documented chatRoom* events', T, async () => {
  const s = await cast();
  try {
    const { room } = await apiOk(inst, 'POST', 'rooms', { participants: [s.a, s.b], description: 'about' });
    for (const X of [s.A, s.B]) await X.next('member', 'chatRoomCreated');
    assert.equal(await s.B.sub('room', { channel: 'Chats::RoomChannel', chat_room_id: room.id }), 'connected');
    await apiOk(inst, 'POST', `rooms/${room.uuid}/messages`, { sender: s.a, body: 'unread' });
    for (const X of [s.A, s.B]) await X.next('member', 'newMessage');
    await s.B.next('room', 'newMessage');

    const read = await apiOk(inst, 'POST', `rooms/${room.uuid}/read`, { member: s.b });
    assert.equal(read.room.participants[1].unread_messages_count, 0);
    const r = assertEvent(await s.B.next('member', 'chatRoomRead'), 'chatRoomRead', { chat_room_uuid: 'string' }, 'chatRoomRead');
    assert.equal(r.chat_room_uuid, room.uuid);

    await apiOk(inst, 'POST', `rooms/${room.uuid}/pin`, { member: s.b });
    const p = assertEvent(await s.B.next('member', 'chatRoomPinned'), 'chatRoomPinned', { chat_room_id: 'number', pinned_at: 'iso' }, 'chatRoomPinned');
    assert.equal(p.chat_room_id, room.id);
    assertEvent(await s.B.next('member', 'chatRoomUpdated'), 'chatRoomUpdated', 'SimplifiedChatRoom', 'chatRoomUpdated on pin');
    await apiOk(inst, 'POST', `rooms/${room.uuid}/unpin`, { member: s.b });
    assert.equal(assertEvent(await s.B.next('member', 'chatRoomUnPinned'), 'chatRoomUnPinned', { chat_room_id: 'number' }, 'unpin').chat_room_id, room.id);

    await apiOk(inst, 'PATCH', `rooms/${room.uuid}`, { name: 'Renamed', show_history: false });
    const u = assertEvent(await s.B.next('room', 'chatRoomUpdated'), 'chatRoomUpdated', 'SimplifiedChatRoom', 'rename on the room');
    assert.equal(u.chat_room_name, 'Renamed');
    assert.equal(u.chat_room_show_history, false);
    for (const X of [s.A, s.B]) assert.equal((await X.next('member', 'chatRoomUpdated')).data.chat_room_name, 'Renamed');

    await apiOk(inst, 'DELETE', `rooms/${room.uuid}`);
    for (const X of [s.A, s.B]) {
      assert.equal(assertEvent(await X.next('member', 'chatRoomDeleted'), 'chatRoomDeleted', { chat_room_uuid: 'string' }, 'delete').chat_room_uuid, room.uuid);
    }
    assert.equal((await api(inst, 'GET', `rooms/${room.uuid}`)).status, 404);
  } finally { s.close(); }
});

test('notifications: newNotification, updateNewNotificationCount, resetNewNotificationCount', T, async () => {
  const s = await cast();
  try {
    const sent = await apiOk(inst, 'POST', 'notifications', { member: s.a, action: 'mention', notifiable_title: 'Hi' });
    assert.deepEqual(sent.events.map((e) => [e.channel, e.event, e.delivered]), [
      [`notification-channel-${s.a}`, 'newNotification', 1], [`notification-channel-${s.a}`, 'updateNewNotificationCount', 1]]);
    const n = assertEvent(await s.A.next('notifications', 'newNotification'), 'newNotification', { id: 'number', created_at: 'iso' }, 'newNotification');
    assert.equal(n.action, 'mention');
    assert.equal(n.notifiable_title, 'Hi');
    assert.deepEqual(await s.A.next('notifications', 'count'), { event: 'updateNewNotificationCount', data: { new_notifications_count: 1 } });
    await apiOk(inst, 'POST', 'notifications', { member: s.a, notification: { action: 'reply' } });
    assert.equal((await s.A.next('notifications', 'the second newNotification')).data.action, 'reply');
    assert.deepEqual(await s.A.next('notifications', 'count'), { event: 'updateNewNotificationCount', data: { new_notifications_count: 2 } });
    await apiOk(inst, 'POST', 'notifications/count', { member: s.a, count: 5 });
    assert.deepEqual(await s.A.next('notifications', 'set count'), { event: 'updateNewNotificationCount', data: { new_notifications_count: 5 } });
    await apiOk(inst, 'POST', 'notifications/reset', { member: s.a });
    assert.deepEqual(await s.A.next('notifications', 'reset'), { event: 'resetNewNotificationCount', data: { new_notifications_count: 0 } });
    // Another member's channel got none of it.
    await apiOk(inst, 'POST', 'notifications/count', { member: s.b, count: 1 });
    assert.deepEqual(await s.B.next('notifications', 'b count'), { event: 'updateNewNotificationCount', data: { new_notifications_count: 1 } });
  } finally { s.close(); }
});

test('an embedded room: its messages reach the room channel only; it cannot be pinned', T, async () => {
  const s = await cast();
  try {
    const { room, events } = await apiOk(inst, 'POST', 'rooms', { participants: [s.a, s.b, s.c], embedded: true, name: 'Space chat' });
    assert.equal(room.chat_room_kind, 'group');
    assert.deepEqual(events, [], 'no chatRoomCreated for an embedded room');
    assert.equal(await s.C.sub('room', { channel: 'Chats::RoomChannel', chat_room_id: room.id }), 'connected');
    const posted = await apiOk(inst, 'POST', `rooms/${room.id}/messages`, { sender: s.c, body: 'in the space' });
    assert.deepEqual(posted.events.map((e) => e.channel), [`chat-room-${room.id}-channel`]);
    assertEvent(await s.C.next('room', 'newMessage'), 'newMessage', 'JSONMessage', 'embedded newMessage');
    const r = await api(inst, 'POST', `rooms/${room.id}/pin`, { member: s.a });
    assert.equal(r.status, 400);
    assert.equal(r.json.field, 'room');
  } finally { s.close(); }
});

test('concurrent posts on several connections: every participant gets every message once, in the model\'s order', T, async () => {
  const s = await cast();
  try {
    const { room } = await apiOk(inst, 'POST', 'rooms', { participants: [s.a, s.b, s.c], kind: 'group' });
    for (const X of [s.A, s.B, s.C]) await X.next('member', 'chatRoomCreated');
    const N = 30;
    // agent: false in httpRequest: one connection per request, spread over the workers.
    const posted = await Promise.all(Array.from({ length: N }, (_, i) =>
      apiOk(inst, 'POST', `rooms/${room.id}/messages`, { sender: [s.a, s.b, s.c][i % 3], body: `m${i}` })));
    const ids = posted.map((p) => p.message.id).sort((x, y) => x - y);
    for (const X of [s.A, s.B, s.C]) {
      const got = [];
      for (let i = 0; i < N; i++) got.push((await X.next('member', `message ${i + 1} of ${N}`)).data.id);
      assert.deepEqual(got, ids, `member ${X.member}: every message once, in id order`);
    }
    const state = await apiOk(inst, 'GET', `rooms/${room.id}`);
    assert.deepEqual(state.room.participants.map((p) => p.unread_messages_count), [2 * N / 3, 2 * N / 3, 2 * N / 3]);
  } finally { s.close(); }
});

test('the wire form for a raw ws client: the identifier echoed, message {event, data}', T, async () => {
  const a = newMember(); const b = newMember();
  const { room } = await apiOk(inst, 'POST', 'rooms', { participants: [a, b] });
  const ws = new WebSocket(`${inst.wsUrl}/cable`, { headers: { Authorization: `Bearer ${memberToken(b)}` } });
  const frames = [];
  let wake = () => {};
  ws.on('message', (d) => { const m = JSON.parse(d.toString()); if (m.type !== 'ping') { frames.push(m); wake(); } });
  const nextFrame = () => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no frame; got ${JSON.stringify(frames)}`)), 5000);
    // Once resolved, no later message may call this check again (it would take that frame).
    const check = () => { if (frames.length) { clearTimeout(t); wake = () => {}; resolve(frames.shift()); } else wake = check; };
    check();
  });
  try {
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    assert.equal((await nextFrame()).type, 'welcome');
    const identifier = `{"channel":"Chats::RoomChannel","chat_room_id":"${room.uuid}"}`;
    ws.send(JSON.stringify({ command: 'subscribe', identifier }));
    assert.deepEqual(await nextFrame(), { identifier, type: 'confirm_subscription' });
    const posted = await apiOk(inst, 'POST', `rooms/${room.uuid}/messages`, { sender: a, body: 'raw' });
    assert.deepEqual(await nextFrame(), { identifier, message: { event: 'newMessage', data: posted.message } });
  } finally { ws.close(); }
});

test('rooms the model does not know keep the open rule', T, async () => {
  const x = newMember();
  const X = consumer(inst, x);
  try {
    assert.equal(await X.sub('r', { channel: 'Chats::RoomChannel', chat_room_id: 987654321 }), 'connected');
    assert.equal(await X.sub('u', { channel: 'Chats::RoomChannel', chat_room_id: 'not-a-room-of-the-model' }), 'connected');
  } finally { X.close(); }
});

test('malformed requests name the field; the API key is required', T, async () => {
  const a = newMember(); const b = newMember();
  const { room } = await apiOk(inst, 'POST', 'rooms', { participants: [a, b] });
  const cases = [
    ['POST', 'rooms', { participants: [] }, 400, 'participants'],
    ['POST', 'rooms', { participants: [a, a] }, 400, 'participants'],
    ['POST', 'rooms', { participants: [a, b, 3], kind: 'direct' }, 400, 'participants'],
    ['POST', 'rooms', { participants: [a, b], kind: 'channel' }, 400, 'kind'],
    ['POST', 'rooms', { participants: [a, b], embedded: 'yes' }, 400, 'embedded'],
    ['POST', 'rooms', '{"participants":', 400, '(body)'],
    ['POST', 'members', { name: 'x' }, 400, 'id'],
    ['POST', `rooms/${room.id}/messages`, { body: 'x' }, 400, 'sender'],
    ['POST', `rooms/${room.id}/messages`, { sender: a }, 400, 'body'],
    ['POST', `rooms/${room.id}/messages`, { sender: a, body: 'x', parent_id: 'one' }, 400, 'parent_id'],
    ['POST', `rooms/${room.id}/messages`, { sender: a, body: 'x', parent_id: 999999 }, 404, 'parent_id'],
    ['POST', `rooms/${room.id}/messages`, { sender: 424242, body: 'x' }, 400, 'sender'],
    ['POST', 'rooms/no-such-room/messages', { sender: a, body: 'x' }, 404, 'room'],
    ['PATCH', `rooms/${room.id}/messages/999999`, { body: 'y' }, 404, 'message'],
    ['PATCH', `rooms/${room.id}`, {}, 400, '(body)'],
    ['POST', `rooms/${room.id}/read`, {}, 400, 'member'],
    ['POST', `rooms/${room.id}/messages/1/reactions`, { member: a }, 400, 'emoji'],
    ['POST', 'notifications', { member: a, notification: 5 }, 400, 'notification'],
    ['POST', 'notifications/count', { member: a, count: -1 }, 400, 'count'],
    ['GET', 'nothing-here', undefined, 404, 'path'],
  ];
  for (const [method, path, body, status, field] of cases) {
    const r = await api(inst, method, path, body);
    assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.json.ok, false);
    assert.equal(r.json.field, field, `${method} ${path}: ${r.text}`);
    assert.ok(r.json.message.length > 5);
  }
  const put = await api(inst, 'PUT', `rooms/${room.id}`, {});
  assert.equal(put.status, 405);
  assert.match(put.headers.allow, /PATCH/);
  assert.equal((await api(inst, 'GET', 'rooms', undefined, { key: null })).status, 401);
  assert.equal((await api(inst, 'GET', 'rooms', undefined, { key: 'wrong' })).status, 401);
});

test('bounds: old messages dropped past mock.circle_max_messages, rooms refused past mock.circle_max_rooms, counted', T, async () => {
  const small = await start({ env: { ...ENV, WSHUB_MOCK_CIRCLE_MAX_MESSAGES: '3', WSHUB_MOCK_CIRCLE_MAX_ROOMS: '2' } });
  try {
    const a = newMember(); const b = newMember();
    const { room } = await apiOk(small, 'POST', 'rooms', { participants: [a, b] });
    const ids = [];
    let dropped = 0;
    for (let i = 0; i < 5; i++) {
      const r = await apiOk(small, 'POST', `rooms/${room.id}/messages`, { sender: a, body: `m${i}` });
      ids.push(r.message.id);
      dropped += r.dropped || 0;
    }
    assert.equal(dropped, 2);
    const state = await apiOk(small, 'GET', `rooms/${room.id}`);
    assert.deepEqual(state.room.messages.map((m) => m.id), ids.slice(2));
    await apiOk(small, 'POST', 'rooms', { participants: [a, b] });
    const refused = await api(small, 'POST', 'rooms', { participants: [a, b] });
    assert.equal(refused.status, 409);
    assert.equal(refused.json.error, 'limit_reached');
    const m = parseMetrics((await httpRequest(small, { path: '/metrics' })).text);
    assert.equal(m.wshub_mock_circle_messages_dropped_total, 2);
    assert.equal(m.wshub_mock_circle_refused_total, 1);
    assert.equal(m.wshub_mock_circle_rooms, 2);
    assert.equal(m.wshub_mock_circle_messages, 3);
    assert.ok(m.wshub_mock_circle_message_bytes > 0);
  } finally { await small.teardown(); }
});

test('a message alone over mock.circle_max_bytes is refused and leaves the counts and the room as they were', T, async () => {
  const small = await start({ env: { ...ENV, WSHUB_MOCK_CIRCLE_MAX_BYTES: '65536', WSHUB_MOCK_CIRCLE_MAX_MESSAGES: '3' } });
  try {
    const a = newMember(); const b = newMember();
    const { room } = await apiOk(small, 'POST', 'rooms', { participants: [a, b] });
    const first = await apiOk(small, 'POST', `rooms/${room.id}/messages`, { sender: a, body: 'kept' });
    const big = await api(small, 'POST', `rooms/${room.id}/messages`, { sender: a, body: 'x'.repeat(70000) });
    assert.equal(big.status, 409);
    assert.equal(big.json.error, 'limit_reached');
    assert.equal(big.json.field, 'body');
    const m = parseMetrics((await httpRequest(small, { path: '/metrics' })).text);
    assert.equal(m.wshub_mock_circle_messages, 1);
    const next = await apiOk(small, 'POST', `rooms/${room.id}/messages`, { sender: a, body: 'next' });
    assert.equal(next.dropped, undefined);
    const state = await apiOk(small, 'GET', `rooms/${room.id}`);
    assert.deepEqual(state.room.messages.map((x) => x.id), [first.message.id, next.message.id]);
    const after = parseMetrics((await httpRequest(small, { path: '/metrics' })).text);
    assert.equal(after.wshub_mock_circle_messages, 2);
    assert.equal(after.wshub_mock_circle_messages_dropped_total, 0);
  } finally { await small.teardown(); }
});

test('mock.enabled false: /api/circle answers 404', T, async () => {
  const off = await start({ env: { ...ENV, WSHUB_MOCK_ENABLED: 'false' } });
  try {
    const r = await api(off, 'POST', 'rooms', { participants: [1, 2] });
    assert.equal(r.status, 404);
    assert.equal(r.json.error, 'not_found');
  } finally { await off.teardown(); }
});
