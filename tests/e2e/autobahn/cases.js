'use strict';
// The Autobahn|Testsuite fuzzingclient cases 1.* - 7.*, 9.* and 10.*, re-implemented from the
// published case definitions (crossbario/autobahn-testsuite, autobahntestsuite/case/*.py).
// Each entry: { id, description, expectation, init?(t), onOpen(t), onMessage?(t, msg, isBinary),
// onPong?(t, payload), afterConnectionLost?(t), timeout? }. `t` is a Case (fuzzingclient.js):
// t.p is the protocol (sendFrame, sendMessage, sendClose, sendCloseFrame, killAfter, closeAfter,
// continueLater, the streaming API), t.expected maps a verdict to the expected event list,
// t.expectedClose is { closedByMe, closeCode: [..], requireClean, closedByWrongEndpointIsFatal? }.
// Events are ['message', payload, isBinary], ['pong', payload], ['timeout', tag].

const {
  OK, NON_STRICT, FAILED, INFORMATIONAL, STATE_OPEN, isValidUtf8, wrongCodeIsFatal, DEFAULT_OPTIONS,
} = require('./fuzzingclient');

const NORMAL = 1000;
const PROTOCOL_ERROR = 1002;
const INVALID_PAYLOAD = 1007;

const b = (s) => Buffer.from(s, 'utf8'); // text as UTF-8 octets (the Python 2 sources are byte strings)
const hex = (h) => Buffer.from(h.replace(/\s+/g, ''), 'hex');
const fill = (octet, n) => Buffer.alloc(n, octet);
const cleanClose = () => ({ closedByMe: true, closeCode: [NORMAL], requireClean: true });
const failedWith = (code) => ({ closedByMe: false, closeCode: [code], requireClean: false });

const cases = [];
function add(def) { cases.push(def); }

// ---- 1.* Framing ---------------------------------------------------------------------------
function framingCases(sub, opcode, kind, octet) {
  const sizes = [
    [0, 1], [125, 1], [126, 1], [127, 1], [128, 1], [65535, 10], [65536, 10], [65536, 10, 997],
  ];
  sizes.forEach(([len, kill, chop], i) => {
    const payload = fill(octet, len);
    add({
      id: `1.${sub}.${i + 1}`,
      description: len === 0 ? `Send ${kind} message with payload 0.`
        : `Send ${kind} message message with payload of length ${len}.${chop ? ` Sent out data in chops of ${chop} octets.` : ''}`,
      expectation: `Receive echo'ed ${kind} message (with ${len === 0 ? 'empty payload' : 'payload as sent'}). Clean close with normal code.`,
      onOpen(t) {
        t.expected.set(OK, [['message', payload, opcode === 2]]);
        t.expectedClose = cleanClose();
        t.p.sendFrame({ opcode, payload, chopsize: chop || null });
        t.p.killAfter(kill);
      },
    });
  });
}
framingCases(1, 1, 'text', 0x2a); // '*'
framingCases(2, 2, 'binary', 0xfe);

// ---- 2.* Pings/Pongs -----------------------------------------------------------------------
function pingCase(id, description, expectation, payload, { chopsize = null, closeAfter = 1 } = {}) {
  add({
    id, description, expectation,
    onOpen(t) {
      t.expected.set(OK, [['pong', payload]]);
      t.expectedClose = cleanClose();
      t.p.sendFrame({ opcode: 9, payload, chopsize });
      t.p.closeAfter(closeAfter);
    },
  });
}
pingCase('2.1', 'Send ping without payload.', 'Pong (with empty payload) is sent in reply to Ping. Clean close with normal code.', Buffer.alloc(0));
pingCase('2.2', 'Send ping with small text payload.', "Pong with payload echo'ed is sent in reply to Ping. Clean close with normal code.", b('Hello, world!'));
pingCase('2.3', 'Send ping with small binary (non UTF-8) payload.', "Pong with payload echo'ed is sent in reply to Ping. Clean close with normal code.", hex('00fffefdfcfb00ff'));
pingCase('2.4', 'Send ping with binary payload of 125 octets.', "Pong with payload echo'ed is sent in reply to Ping. Clean close with normal code.", fill(0xfe, 125));
add({
  id: '2.5',
  description: 'Send ping with binary payload of 126 octets.',
  expectation: 'Connection is failed immediately (1002/Protocol Error), since control frames are only allowed to have payload up to and including 125 octets..',
  onOpen(t) {
    t.expected.set(OK, []);
    t.expectedClose = failedWith(PROTOCOL_ERROR);
    t.p.sendFrame({ opcode: 9, payload: fill(0xfe, 126) });
    t.p.killAfter(1);
  },
});
pingCase('2.6', 'Send ping with binary payload of 125 octets, send in octet-wise chops.', "Pong with payload echo'ed is sent in reply to Ping. Implementations must be TCP clean. Clean close with normal code.", fill(0xfe, 125), { chopsize: 1, closeAfter: 2 });
add({
  id: '2.7',
  description: 'Send unsolicited pong without payload. Verify nothing is received. Clean close with normal code.',
  expectation: 'Nothing.',
  onOpen(t) {
    t.expected.set(OK, []);
    t.expectedClose = cleanClose();
    t.p.sendFrame({ opcode: 10 });
    t.p.sendClose(NORMAL);
    t.p.closeAfter(1);
  },
});
add({
  id: '2.8',
  description: 'Send unsolicited pong with payload. Verify nothing is received. Clean close with normal code.',
  expectation: 'Nothing.',
  onOpen(t) {
    t.expected.set(OK, []);
    t.expectedClose = cleanClose();
    t.p.sendFrame({ opcode: 10, payload: b('unsolicited pong payload') });
    t.p.sendClose(NORMAL);
    t.p.closeAfter(1);
  },
});
add({
  id: '2.9',
  description: 'Send unsolicited pong with payload. Send ping with payload. Verify pong for ping is received.',
  expectation: "Nothing in reply to own Pong, but Pong with payload echo'ed in reply to Ping. Clean close with normal code.",
  onOpen(t) {
    const payload = b('ping payload');
    t.expected.set(OK, [['pong', payload]]);
    t.expectedClose = cleanClose();
    t.p.sendFrame({ opcode: 10, payload: b('unsolicited pong payload') });
    t.p.sendFrame({ opcode: 9, payload });
    t.p.closeAfter(1);
  },
});
for (const [id, chopsize, extra] of [['2.10', null, ''], ['2.11', 1, ' Send out octets in octet-wise chops.']]) {
  add({
    id,
    description: `Send 10 Pings with payload.${extra}`,
    expectation: 'Pongs for our Pings with all the payloads. Note: This is not required by the Spec .. but we check for this behaviour anyway. Clean close with normal code.',
    onOpen(t) {
      const exp = [];
      for (let i = 0; i < 10; i++) {
        const payload = b(`payload-${i}`);
        exp.push(['pong', payload]);
        t.p.sendFrame({ opcode: 9, payload, chopsize });
      }
      t.expected.set(OK, exp);
      t.expectedClose = cleanClose();
      t.p.closeAfter(3);
    },
  });
}

// ---- 3.* Reserved bits ---------------------------------------------------------------------
const RSV_EXPECT = 'Echo for first message is received, but then connection is failed immediately, since RSV must be 0, when no extension defining RSV meaning has been negotiated. The Pong is not received.';
add({
  id: '3.1',
  description: 'Send small text message with <b>RSV = 1</b>.',
  expectation: 'The connection is failed immediately (1002/protocol error), since RSV must be 0, when no extension defining RSV meaning has been negoiated.',
  onOpen(t) {
    t.expected.set(OK, []);
    t.expectedClose = failedWith(PROTOCOL_ERROR);
    t.p.sendFrame({ opcode: 1, payload: b('Hello, world!'), rsv: 1 });
    t.p.killAfter(1);
  },
});
for (const [id, rsv, how, desc] of [
  ['3.2', 2, {}, 'Send small text message, then send again with <b>RSV = 2</b>, then send Ping.'],
  ['3.3', 3, { sync: true }, 'Send small text message, then send again with <b>RSV = 3</b>, then send Ping. Octets are sent in frame-wise chops. Octets are sent in octet-wise chops.'],
  ['3.4', 4, { chopsize: 1 }, 'Send small text message, then send again with <b>RSV = 4</b>, then send Ping. Octets are sent in octet-wise chops.'],
]) {
  add({
    id, description: desc, expectation: RSV_EXPECT,
    onOpen(t) {
      const payload = b('Hello, world!');
      t.expected.set(OK, [['message', payload, false]]);
      t.expected.set(NON_STRICT, []);
      t.expectedClose = failedWith(PROTOCOL_ERROR);
      t.p.sendFrame({ opcode: 1, payload, ...how });
      t.p.sendFrame({ opcode: 1, payload, rsv, ...how });
      t.p.sendFrame({ opcode: 9, ...how });
      t.p.killAfter(1);
    },
  });
}
add({
  id: '3.5',
  description: 'Send small binary message with <b>RSV = 5</b>.',
  expectation: 'The connection is failed immediately, since RSV must be 0.',
  onOpen(t) {
    t.expected.set(OK, []);
    t.expectedClose = failedWith(PROTOCOL_ERROR);
    t.p.sendFrame({ opcode: 2, payload: hex('00fffefdfcfb00ff'), rsv: 5 });
    t.p.killAfter(1);
  },
});
add({
  id: '3.6',
  // (the published case says "Ping" but sends opcode 2 — reproduced as published)
  description: 'Send Ping with <b>RSV = 6</b>.',
  expectation: 'The connection is failed immediately, since RSV must be 0.',
  onOpen(t) {
    t.expected.set(OK, []);
    t.expectedClose = failedWith(PROTOCOL_ERROR);
    t.p.sendFrame({ opcode: 2, payload: b('Hello, world!'), rsv: 6 });
    t.p.killAfter(1);
  },
});
add({
  id: '3.7',
  description: 'Send Close with <b>RSV = 7</b>.',
  expectation: 'The connection is failed immediately, since RSV must be 0.',
  onOpen(t) {
    t.expected.set(OK, []);
    t.expectedClose = failedWith(PROTOCOL_ERROR);
    t.p.sendFrame({ opcode: 8, rsv: 7 });
    t.p.killAfter(1);
  },
});

// ---- 4.* Opcodes ---------------------------------------------------------------------------
function reservedOpcodeCases(sub, opcodes, kind) {
  const [o1, o2, o3, o4, o5] = opcodes;
  add({
    id: `4.${sub}.1`,
    description: `Send frame with reserved ${kind} <b>Opcode = ${o1}</b>.`,
    expectation: 'The connection is failed immediately.',
    onOpen(t) {
      t.expected.set(OK, []);
      t.expectedClose = failedWith(PROTOCOL_ERROR);
      t.p.sendFrame({ opcode: o1 });
      t.p.killAfter(1);
    },
  });
  add({
    id: `4.${sub}.2`,
    description: `Send frame with reserved ${kind} <b>Opcode = ${o2}</b> and non-empty payload.`,
    expectation: 'The connection is failed immediately.',
    onOpen(t) {
      t.expected.set(OK, []);
      t.expectedClose = failedWith(PROTOCOL_ERROR);
      t.p.sendFrame({ opcode: o2, payload: b('reserved opcode payload') });
      t.p.killAfter(1);
    },
  });
  const withText = [[3, o3, false, {}], [4, o4, true, {}], [5, o5, true, { chopsize: 1 }]];
  for (const [n, op, withPayload, how] of withText) {
    add({
      id: `4.${sub}.${n}`,
      description: `Send small text message, then send frame with reserved ${kind} <b>Opcode = ${op}</b>${withPayload ? ' and non-empty payload' : ''}, then send Ping.`,
      expectation: "Echo for first message is received, but then connection is failed immediately, since reserved opcode frame is used. A Pong is not received.",
      onOpen(t) {
        const payload = b('Hello, world!');
        t.expected.set(OK, [['message', payload, false]]);
        t.expected.set(NON_STRICT, []);
        t.expectedClose = failedWith(PROTOCOL_ERROR);
        t.p.sendFrame({ opcode: 1, payload, ...how });
        t.p.sendFrame({ opcode: op, payload: withPayload ? payload : undefined, ...how });
        t.p.sendFrame({ opcode: 9, ...how });
        t.p.killAfter(1);
      },
    });
  }
}
reservedOpcodeCases(1, [3, 4, 5, 6, 7], 'non-control');
reservedOpcodeCases(2, [11, 12, 13, 14, 15], 'control');

// ---- 5.* Fragmentation ---------------------------------------------------------------------
for (const [id, opcode, name] of [['5.1', 9, 'Ping'], ['5.2', 10, 'Pong']]) {
  add({
    id,
    description: `Send ${name} fragmented into 2 fragments.`,
    expectation: 'Connection is failed immediately, since control message MUST NOT be fragmented.',
    onOpen(t) {
      t.expected.set(OK, []);
      t.expectedClose = failedWith(PROTOCOL_ERROR);
      t.p.sendFrame({ opcode, fin: false, payload: b('fragment1') });
      t.p.sendFrame({ opcode: 0, fin: true, payload: b('fragment2') });
      t.p.killAfter(1);
    },
  });
}
for (const [id, how, extra] of [['5.3', {}, ''], ['5.4', { sync: true }, ', octets are sent in frame-wise chops'], ['5.5', { chopsize: 1 }, ', octets are sent in octet-wise chops']]) {
  add({
    id,
    description: `Send text Message fragmented into 2 fragments${extra}.`,
    expectation: "Message is processed and echo'ed back to us.",
    onOpen(t) {
      const frags = [b('fragment1'), b('fragment2')];
      t.expected.set(OK, [['message', Buffer.concat(frags), false]]);
      t.expectedClose = cleanClose();
      t.p.sendFrame({ opcode: 1, fin: false, payload: frags[0], ...how });
      t.p.sendFrame({ opcode: 0, fin: true, payload: frags[1], ...how });
      t.p.closeAfter(1);
    },
  });
}
for (const [id, how, extra] of [['5.6', {}, ''], ['5.7', { sync: true }, ' Octets are sent in frame-wise chops.'], ['5.8', { chopsize: 1 }, ' Octets are sent in octet-wise chops.']]) {
  add({
    id,
    description: `Send text Message fragmented into 2 fragments, one ping with payload in-between.${extra}`,
    expectation: "A pong is received, then the message is echo'ed back to us.",
    onOpen(t) {
      const ping = b('ping payload');
      const frags = [b('fragment1'), b('fragment2')];
      t.expected.set(OK, [['pong', ping], ['message', Buffer.concat(frags), false]]);
      t.expectedClose = cleanClose();
      t.p.sendFrame({ opcode: 1, fin: false, payload: frags[0], ...how });
      t.p.sendFrame({ opcode: 9, fin: true, payload: ping, ...how });
      t.p.sendFrame({ opcode: 0, fin: true, payload: frags[1], ...how });
      t.p.closeAfter(1);
    },
  });
}
const chopNames = [[{}, 'sent in one chop'], [{ sync: true }, 'sent in per-frame chops'], [{ chopsize: 1 }, 'sent in octet-wise chops']];
[[9, true], [12, false]].forEach(([base, contFin]) => {
  chopNames.forEach(([how, name], j) => {
    add({
      id: `5.${base + j}`,
      description: `Send unfragmented Text Message after Continuation Frame with FIN = ${contFin ? 'true' : 'false'}, where there is nothing to continue, ${name}.`,
      expectation: 'The connection is failed immediately, since there is no message to continue.',
      onOpen(t) {
        t.expected.set(OK, []);
        t.expectedClose = failedWith(PROTOCOL_ERROR);
        t.p.sendFrame({ opcode: 0, fin: contFin, payload: b('non-continuation payload'), ...how });
        t.p.sendFrame({ opcode: 1, fin: true, payload: b('Hello, world!'), ...how });
        t.p.killAfter(1);
      },
    });
  });
});
add({
  id: '5.15',
  description: 'Send text Message fragmented into 2 fragments, then Continuation Frame with FIN = false where there is nothing to continue, then unfragmented Text Message, all sent in one chop.',
  expectation: 'The connection is failed immediately, since there is no message to continue.',
  onOpen(t) {
    const f = [b('fragment1'), b('fragment2'), b('fragment3'), b('fragment4')];
    t.expected.set(OK, [['message', Buffer.concat(f.slice(0, 2)), false]]);
    t.expected.set(NON_STRICT, []);
    t.expectedClose = failedWith(PROTOCOL_ERROR);
    t.p.sendFrame({ opcode: 1, fin: false, payload: f[0] });
    t.p.sendFrame({ opcode: 0, fin: true, payload: f[1] });
    t.p.sendFrame({ opcode: 0, fin: false, payload: f[2] });
    t.p.sendFrame({ opcode: 1, fin: true, payload: f[3] });
    t.p.killAfter(1);
  },
});
for (const [id, firstFin] of [['5.16', false], ['5.17', true]]) {
  add({
    id,
    description: `Repeated 2x: Continuation Frame with FIN = ${firstFin ? 'true' : 'false'} (where there is nothing to continue), then text Message fragmented into 2 fragments.`,
    expectation: 'The connection is failed immediately, since there is no message to continue.',
    onOpen(t) {
      t.expected.set(OK, []);
      t.expectedClose = failedWith(PROTOCOL_ERROR);
      for (let i = 0; i < 2; i++) {
        t.p.sendFrame({ opcode: 0, fin: firstFin, payload: b('fragment1') });
        t.p.sendFrame({ opcode: 1, fin: false, payload: b('fragment2') });
        t.p.sendFrame({ opcode: 0, fin: true, payload: b('fragment3') });
      }
      t.p.killAfter(1);
    },
  });
}
add({
  id: '5.18',
  description: 'Send text Message fragmented into 2 fragments, with both frame opcodes set to text, sent in one chop.',
  expectation: 'The connection is failed immediately, since all data frames after the initial data frame must have opcode 0.',
  onOpen(t) {
    t.expected.set(OK, []);
    t.expectedClose = failedWith(PROTOCOL_ERROR);
    t.p.sendFrame({ opcode: 1, fin: false, payload: b('fragment1') });
    t.p.sendFrame({ opcode: 1, fin: true, payload: b('fragment2') });
    t.p.killAfter(1);
  },
});
for (const [id, sync] of [['5.19', false], ['5.20', true]]) {
  add({
    id,
    description: sync
      ? 'Same as Case 5.19, but send all frames with SYNC = True. Note, this does not change the octets sent in any way, only how the stream is chopped up on the wire.'
      : 'A fragmented text message is sent in multiple frames. After sending the first 2 frames of the text message, a Ping is sent. Then we wait 1s, then we send 2 more text fragments, another Ping and then the final text fragment. Everything is legal.',
    expectation: sync
      ? 'Same as Case 5.19. Implementations must be agnostic to how octet stream is chopped up on wire (must be TCP clean).'
      : "The peer immediately answers the first Ping before it has received the last text message fragment. The peer pong's back the Ping's payload exactly, and echo's the payload of the fragmented message back to us.",
    onOpen(t) {
      const fr = [1, 2, 3, 4, 5].map((i) => b(`fragment${i}`));
      const pings = [b('pongme 1!'), b('pongme 2!')];
      t.expected.set(OK, [['pong', pings[0]], ['pong', pings[1]], ['message', Buffer.concat(fr), false]]);
      t.expectedClose = cleanClose();
      t.p.sendFrame({ opcode: 1, fin: false, payload: fr[0], sync });
      t.p.sendFrame({ opcode: 0, fin: false, payload: fr[1], sync });
      t.p.sendFrame({ opcode: 9, fin: true, payload: pings[0], sync });
      t.p.continueLater(1, () => {
        t.p.sendFrame({ opcode: 0, fin: false, payload: fr[2], sync });
        t.p.sendFrame({ opcode: 0, fin: false, payload: fr[3], sync });
        t.p.sendFrame({ opcode: 9, fin: true, payload: pings[1], sync });
        t.p.sendFrame({ opcode: 0, fin: true, payload: fr[4], sync });
        t.p.closeAfter(1);
      });
    },
  });
}

// ---- 6.* UTF-8 handling --------------------------------------------------------------------
add({
  id: '6.1.1',
  description: 'Send text message of length 0.',
  expectation: "A message is echo'ed back to us (with empty payload).",
  onOpen(t) {
    t.expected.set(OK, [['message', Buffer.alloc(0), false]]);
    t.expectedClose = cleanClose();
    t.p.sendFrame({ opcode: 1, payload: Buffer.alloc(0) });
    t.p.closeAfter(1);
  },
});
add({
  id: '6.1.2',
  description: 'Send fragmented text message, 3 fragments each of length 0.',
  expectation: "A message is echo'ed back to us (with empty payload).",
  onOpen(t) {
    t.expected.set(OK, [['message', Buffer.alloc(0), false]]);
    t.expectedClose = cleanClose();
    t.p.sendFrame({ opcode: 1, fin: false });
    t.p.sendFrame({ opcode: 0, fin: false });
    t.p.sendFrame({ opcode: 0, fin: true });
    t.p.closeAfter(1);
  },
});
add({
  id: '6.1.3',
  description: 'Send fragmented text message, 3 fragments, first and last of length 0, middle non-empty.',
  expectation: "A message is echo'ed back to us (with payload = payload of middle fragment).",
  onOpen(t) {
    const payload = b('middle frame payload');
    t.expected.set(OK, [['message', payload, false]]);
    t.expectedClose = cleanClose();
    t.p.sendFrame({ opcode: 1, fin: false });
    t.p.sendFrame({ opcode: 0, fin: false, payload });
    t.p.sendFrame({ opcode: 0, fin: true });
    t.p.closeAfter(1);
  },
});
const HELLO_UTF8 = b('Hello-µ@ßöäüàá-UTF-8!!');
const KOSME = hex('cebae1bdb9cf83cebcceb5'); // κόσμε
add({
  id: '6.2.1',
  description: `Send a valid UTF-8 text message in one fragment.<br><br>MESSAGE:<br>${HELLO_UTF8.toString('utf8')}<br>${HELLO_UTF8.toString('hex')}`,
  expectation: "The message is echo'ed back to us.",
  onOpen(t) {
    t.expected.set(OK, [['message', HELLO_UTF8, false]]);
    t.expectedClose = cleanClose();
    t.p.sendMessage(HELLO_UTF8, false);
    t.p.closeAfter(1);
  },
});
add({
  id: '6.2.2',
  description: 'Send a valid UTF-8 text message in two fragments, fragmented on UTF-8 code point boundary.',
  expectation: "The message is echo'ed back to us.",
  onOpen(t) {
    const p1 = b('Hello-µ@ßöä');
    const p2 = b('üàá-UTF-8!!');
    t.expected.set(OK, [['message', Buffer.concat([p1, p2]), false]]);
    t.expectedClose = cleanClose();
    t.p.sendFrame({ opcode: 1, fin: false, payload: p1 });
    t.p.sendFrame({ opcode: 0, fin: true, payload: p2 });
    t.p.closeAfter(1);
  },
});
for (const [id, payload] of [['6.2.3', HELLO_UTF8], ['6.2.4', KOSME]]) {
  add({
    id,
    description: `Send a valid UTF-8 text message in fragments of 1 octet, resulting in frames ending on positions which are not code point ends.<br><br>MESSAGE:<br>${payload.toString('hex')}`,
    expectation: "The message is echo'ed back to us.",
    onOpen(t) {
      t.expected.set(OK, [['message', payload, false]]);
      t.expectedClose = cleanClose();
      t.p.sendMessage(payload, false, 1);
      t.p.closeAfter(1);
    },
  });
}
// invalid exactly on octet 12 (0xa0)
const INVALID_6_3 = Buffer.concat([KOSME, hex('eda080'), hex('656469746564')]);
for (const [id, frag] of [['6.3.1', null], ['6.3.2', 1]]) {
  add({
    id,
    description: frag
      ? `Send invalid UTF-8 text message in fragments of 1 octet, resulting in frames ending on positions which are not code point ends.<br><br>MESSAGE:<br>${INVALID_6_3.toString('hex')}`
      : `Send invalid UTF-8 text message unfragmented.<br><br>MESSAGE:<br>${INVALID_6_3.toString('hex')}`,
    expectation: 'The connection is failed immediately, since the payload is not valid UTF-8.',
    onOpen(t) {
      t.expected.set(OK, []);
      t.expectedClose = { ...failedWith(INVALID_PAYLOAD), closedByWrongEndpointIsFatal: true };
      t.p.sendMessage(INVALID_6_3, false, frag);
      t.p.killAfter(1);
    },
  });
}
// 6.4.* fail fast: PART2 is U+110000 in the UTF-8 integer encoding scheme (invalid on octet 12)
const P641 = [KOSME, hex('f4908080'), hex('656469746564')];
const P641_ALL = Buffer.concat(P641);
const failFastParts = {
  '6.4.1': P641,
  '6.4.2': [P641_ALL.subarray(0, 12), P641_ALL.subarray(12, 13), P641_ALL.subarray(13)],
};
function failFastExpect(t) {
  t.expected.set(OK, [['timeout', 'A']]);
  t.expected.set(NON_STRICT, [['timeout', 'A'], ['timeout', 'B']]);
  t.expectedClose = { ...failedWith(INVALID_PAYLOAD), closedByWrongEndpointIsFatal: true };
}
for (const id of ['6.4.1', '6.4.2']) {
  const [a, bb, c] = failFastParts[id];
  add({
    id,
    description: id === '6.4.1'
      ? `Send invalid UTF-8 text message in 3 fragments (frames). First frame payload is valid, then wait, then 2nd frame which contains the payload making the sequence invalid, then wait, then 3rd frame with rest. Note that PART1 and PART3 are valid UTF-8 in themselves, PART2 is a 0x110000 encoded as in the UTF-8 integer encoding scheme, but the codepoint is invalid (out of range). PART1 = ${a.toString('hex')}, PART2 = ${bb.toString('hex')}, PART3 = ${c.toString('hex')}`
      : `Same as Case 6.4.1, but in 2nd frame, we send only up to and including the octet making the complete payload invalid. PART1 = ${a.toString('hex')}, PART2 = ${bb.toString('hex')}, PART3 = ${c.toString('hex')}`,
    expectation: 'The first frame is accepted, we expect to timeout on the first wait. The 2nd frame should be rejected immediately (fail fast on UTF-8). If we timeout, we expect the connection is failed at least then, since the complete message payload is not valid UTF-8.',
    onOpen(t) {
      failFastExpect(t);
      t.p.sendFrame({ opcode: 1, fin: false, payload: a });
      t.p.continueLater(1, () => {
        if (t.p.state !== STATE_OPEN) return;
        t.received.push(['timeout', 'A']);
        t.p.sendFrame({ opcode: 0, fin: false, payload: bb });
        t.p.continueLater(1, () => {
          if (t.p.state !== STATE_OPEN) return;
          t.received.push(['timeout', 'B']);
          t.p.sendFrame({ opcode: 0, fin: true, payload: c });
          t.p.killAfter(1);
        }, 'B');
      }, 'A');
    },
  });
}
for (const [id, parts, like] of [['6.4.3', P641, '6.4.1'], ['6.4.4', failFastParts['6.4.2'], '6.4.2']]) {
  const [a, bb, c] = parts;
  add({
    id,
    description: `Same as Case ${like}, but we send message not in 3 frames, but in 3 chops of the same message frame. PART1 = ${a.toString('hex')}, PART2 = ${bb.toString('hex')}, PART3 = ${c.toString('hex')}`,
    expectation: 'The first chop is accepted, we expect to timeout on the first wait. The 2nd chop should be rejected immediately (fail fast on UTF-8). If we timeout, we expect the connection is failed at least then, since the complete message payload is not valid UTF-8.',
    onOpen(t) {
      failFastExpect(t);
      t.p.beginMessage();
      t.p.beginMessageFrame(P641_ALL.length);
      t.p.sendMessageFrameData(a);
      t.p.continueLater(1, () => {
        if (t.p.state !== STATE_OPEN) return;
        t.received.push(['timeout', 'A']);
        t.p.sendMessageFrameData(bb);
        t.p.continueLater(1, () => {
          if (t.p.state !== STATE_OPEN) return;
          t.received.push(['timeout', 'B']);
          t.p.sendMessageFrameData(c);
          t.p.endMessage();
          t.p.killAfter(1);
        }, 'B');
      }, 'A');
    },
  });
}

// 6.5.* - 6.23.*: the UTF-8 decoder test sequences (Markus Kuhn's UTF-8-test.txt as used by
// createUtf8TestSequences), each sent as one text message.
function utf8TestSequences() {
  const seqs = [];
  const vss = KOSME;
  seqs.push(['Some valid UTF-8 sequences', [
    [true, hex('68656c6c6f24776f726c64')], // hello$world
    [true, hex('68656c6c6fc2a2776f726c64')],
    [true, hex('68656c6c6fe282ac776f726c64')],
    [true, hex('68656c6c6ff0a4ada2776f726c64')],
    [true, vss],
  ]]);
  const prefixes = [];
  for (let i = 1; i <= vss.length; i++) prefixes.push([isValidUtf8(vss.subarray(0, i)), vss.subarray(0, i)]);
  seqs.push(['All prefixes of a valid UTF-8 string that contains multi-byte code points', prefixes]);
  seqs.push(['First possible sequence of a certain length', [[true, hex('00')], [true, hex('c280')], [true, hex('e0a080')], [true, hex('f0908080')]]]);
  seqs.push(['First possible sequence length 5/6 (invalid codepoints)', [[false, hex('f888808080')], [false, hex('fc8480808080')]]]);
  seqs.push(['Last possible sequence of a certain length', [[true, hex('7f')], [true, hex('dfbf')], [true, hex('efbfbf')], [true, hex('f48fbfbf')]]]);
  seqs.push(['Last possible sequence length 4/5/6 (invalid codepoints)', [[false, hex('f7bfbfbf')], [false, hex('fbbfbfbfbf')], [false, hex('fdbfbfbfbfbf')]]]);
  seqs.push(['Other boundary conditions', [[true, hex('ed9fbf')], [true, hex('ee8080')], [true, hex('efbfbd')], [true, hex('f48fbfbf')], [false, hex('f4908080')]]]);
  const cont = [];
  for (let i = 0x80; i < 0xbf; i++) cont.push(i);
  seqs.push(['Unexpected continuation bytes', [
    [false, hex('80')], [false, hex('bf')], [false, hex('80bf')], [false, hex('80bf80')], [false, hex('80bf80bf')],
    [false, hex('80bf80bf80')], [false, hex('80bf80bf80bf')], [false, Buffer.from(cont)],
  ]]);
  const lonely = [];
  for (const [lo, hi] of [[0xc0, 0xdf], [0xe0, 0xef], [0xf0, 0xf7], [0xf8, 0xfb], [0xfc, 0xfd]]) {
    const s = [];
    for (let i = lo; i < hi; i++) s.push(i, 0x20);
    lonely.push([false, Buffer.from(s)]);
  }
  seqs.push(['Lonely start characters', lonely]);
  const k = ['c0', 'e080', 'f08080', 'f8808080', 'fc80808080', 'df', 'efbf', 'f7bfbf', 'fbbfbfbf', 'fdbfbfbfbf'].map(hex);
  seqs.push(['Sequences with last continuation byte missing', k.map((x) => [false, x])]);
  seqs.push(['Concatenation of incomplete sequences', [[false, Buffer.concat(k)]]]);
  seqs.push(['Impossible bytes', [[false, hex('fe')], [false, hex('ff')], [false, hex('fefeffff')]]]);
  seqs.push(['Examples of an overlong ASCII character', ['c0af', 'e080af', 'f08080af', 'f8808080af', 'fc80808080af'].map((h) => [false, hex(h)])]);
  seqs.push(['Maximum overlong sequences', ['c1bf', 'e09fbf', 'f08fbfbf', 'f887bfbfbf', 'fc83bfbfbfbf'].map((h) => [false, hex(h)])]);
  seqs.push(['Overlong representation of the NUL character', ['c080', 'e08080', 'f0808080', 'f880808080', 'fc8080808080'].map((h) => [false, hex(h)])]);
  seqs.push(['Single UTF-16 surrogates', ['eda080', 'edadbf', 'edae80', 'edafbf', 'edb080', 'edbe80', 'edbfbf'].map((h) => [false, hex(h)])]);
  seqs.push(['Paired UTF-16 surrogates', ['eda080edb080', 'eda080edbfbf', 'edadbfedb080', 'edadbfedbfbf', 'edae80edb080', 'edae80edbfbf', 'edafbfedb080', 'edafbfedbfbf'].map((h) => [false, hex(h)])]);
  const nonchars = [[true, hex('efbfbe')], [true, hex('efbfbf')]];
  for (const z1 of ['f0', 'f1', 'f2', 'f3', 'f4']) {
    for (const z2 of ['8f', '9f', 'af', 'bf']) {
      if (z1 === 'f4' && z2 !== '8f') continue; // those encode code points > U+10FFFF
      for (const z3 of ['be', 'bf']) {
        const zz = z1 + z2 + 'bf' + z3;
        if (zz === 'f08fbfbe' || zz === 'f08fbfbf') continue; // overlong
        nonchars.push([true, hex(zz)]);
      }
    }
  }
  seqs.push(['Non-character code points (valid UTF-8)', nonchars]);
  seqs.push(['Unicode specials (i.e. replacement char)', ['efbfb9', 'efbfba', 'efbfbb', 'efbfbc', 'efbfbd', 'efbfbe', 'efbfbf'].map((h) => [true, hex(h)])]);
  return seqs;
}
const UTF8_SUBCATEGORIES = {};
utf8TestSequences().forEach(([title, list], si) => {
  const sub = 5 + si;
  UTF8_SUBCATEGORIES[`6.${sub}`] = title;
  list.forEach(([valid, payload], j) => {
    add({
      id: `6.${sub}.${j + 1}`,
      description: `${valid ? 'Send a text message with payload which is valid UTF-8 in one fragment.' : 'Send a text message with payload which is not valid UTF-8 in one fragment.'}<br><br>Payload: 0x${payload.toString('hex')}`,
      expectation: valid ? "The message is echo'ed back to us." : 'The connection is failed immediately, since the payload is not valid UTF-8.',
      onOpen(t) {
        if (valid) {
          t.expected.set(OK, [['message', payload, false]]);
          t.expectedClose = cleanClose();
        } else {
          t.expected.set(OK, []);
          t.expectedClose = { ...failedWith(INVALID_PAYLOAD), closedByWrongEndpointIsFatal: true };
        }
        t.p.sendMessage(payload, false);
        t.p.killAfter(0.5);
      },
    });
  });
});

// ---- 7.* Close handling --------------------------------------------------------------------
function closeCase(id, description, expectation, expectedClose, action, extra = {}) {
  add({
    id, description, expectation,
    init(t) { t.suppressClose = extra.suppressClose !== false; },
    onOpen(t) {
      t.expected.set(OK, extra.expected ? extra.expected() : []);
      t.expectedClose = expectedClose;
      action(t.p);
      t.p.killAfter(1);
    },
    afterConnectionLost: wrongCodeIsFatal,
  });
}
closeCase('7.1.1', 'Send a message followed by a close frame', 'Echoed message followed by clean close with normal code.', cleanClose(),
  (p) => p.sendFrame({ opcode: 1, payload: b('Hello World!') }),
  { suppressClose: false, expected: () => [['message', b('Hello World!'), false]] });
closeCase('7.1.2', 'Send two close frames', 'Clean close with normal code. Second close frame ignored.', cleanClose(),
  (p) => { p.sendClose(NORMAL); p.sendFrame({ opcode: 8 }); });
closeCase('7.1.3', 'Send a ping after close message', 'Clean close with normal code, no pong.', cleanClose(),
  (p) => { p.sendClose(NORMAL); p.sendFrame({ opcode: 9 }); });
closeCase('7.1.4', 'Send text message after sending a close frame.', 'Clean close with normal code. Text message ignored.', cleanClose(),
  (p) => { p.sendClose(NORMAL); p.sendFrame({ opcode: 1, payload: b('Hello World!') }); });
closeCase('7.1.5', 'Send message fragment1 followed by close then fragment', 'Clean close with normal code.', cleanClose(),
  (p) => {
    p.sendFrame({ opcode: 1, fin: false, payload: b('fragment1') });
    p.sendClose(NORMAL);
    p.sendFrame({ opcode: 0, fin: true, payload: b('fragment2') });
  });
add({
  id: '7.1.6',
  description: 'Send 256K message followed by close then a ping',
  expectation: 'Case outcome depends on implementation defined close behavior. Message and close frame are sent back to back. If the close frame is processed before the text message write is complete (as can happen in asynchronous processing models) the close frame is processed first and the text message may not be received or may only be partially recieved.',
  init(t) { t.suppressClose = true; },
  onOpen(t) {
    const payload = b('Hello World!');
    t.expected.set(OK, [['message', payload, false]]);
    t.expected.set(NON_STRICT, []);
    t.expectedClose = cleanClose();
    t.p.sendFrame({ opcode: 1, payload: b('BAsd7&jh23'), payloadLen: 256 * 1024 });
    t.p.sendFrame({ opcode: 1, payload });
    t.p.sendClose(NORMAL);
    t.p.sendFrame({ opcode: 9 });
    t.p.killAfter(1);
  },
  afterConnectionLost(t) {
    t.passed = true;
    if (t.behavior === OK) t.result = 'Text message was processed before close.';
    else if (t.behavior === NON_STRICT) t.result = 'Close was processed before text message could be returned.';
    t.behavior = INFORMATIONAL;
    t.behaviorClose = INFORMATIONAL;
  },
});
closeCase('7.3.1', 'Send a close frame with payload length 0 (no close code, no close reason)', 'Clean close with normal code.', cleanClose(),
  (p) => p.sendCloseFrame());
closeCase('7.3.2', 'Send a close frame with payload length 1', 'Clean close with protocol error or drop TCP.',
  { closedByMe: true, closeCode: [PROTOCOL_ERROR], requireClean: false },
  (p) => p.sendCloseFrame(null, b('a')));
closeCase('7.3.3', 'Send a close frame with payload length 2 (regular close with a code)', 'Clean close with normal code.', cleanClose(),
  (p) => p.sendClose(NORMAL));
closeCase('7.3.4', 'Send a close frame with close code and close reason', 'Clean close with normal code.', cleanClose(),
  (p) => p.sendClose(NORMAL, 'Hello World!'));
closeCase('7.3.5', 'Send a close frame with close code and close reason of maximum length (123)', 'Clean close with normal code.', cleanClose(),
  (p) => p.sendClose(NORMAL, '*'.repeat(123)));
closeCase('7.3.6', 'Send a close frame with close code and close reason which is too long (124) - total frame payload 126 octets', 'Clean close with protocol error code or dropped TCP connection.',
  { closedByMe: true, closeCode: [PROTOCOL_ERROR], requireClean: false },
  (p) => p.sendCloseFrame(NORMAL, b('*'.repeat(124))));
closeCase('7.5.1', 'Send a close frame with invalid UTF8 payload', 'Clean close with protocol error or invalid utf8 code or dropped TCP.',
  { closedByMe: true, closeCode: [PROTOCOL_ERROR, INVALID_PAYLOAD], requireClean: false },
  (p) => p.sendCloseFrame(NORMAL, INVALID_6_3));
[1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999].forEach((code, i) => {
  closeCase(`7.7.${i + 1}`, `Send close with valid close code ${code}`, 'Clean close with normal or echoed code',
    { closedByMe: true, closeCode: [NORMAL, code], requireClean: true },
    (p) => p.sendCloseFrame(code), { suppressClose: false });
});
[0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999].forEach((code, i) => {
  closeCase(`7.9.${i + 1}`, `Send close with invalid close code ${code}`, 'Clean close with protocol error code or drop TCP',
    { closedByMe: true, closeCode: [PROTOCOL_ERROR], requireClean: false },
    (p) => p.sendCloseFrame(code), { suppressClose: false });
});
[['7.13.1', 5000, 'Send close with close code 5000'], ['7.13.2', 65535, 'Send close with close code 65536']].forEach(([id, code, desc]) => {
  add({
    id,
    description: desc,
    expectation: 'Actual events are undefined by the spec.',
    init(t) { t.suppressClose = true; },
    onOpen(t) {
      t.expected.set(OK, []);
      t.expectedClose = { closedByMe: true, closeCode: [NORMAL, code, PROTOCOL_ERROR], requireClean: false };
      t.p.sendCloseFrame(code);
      t.p.killAfter(1);
    },
    afterConnectionLost(t) {
      t.passed = true;
      t.behavior = INFORMATIONAL;
      t.behaviorClose = INFORMATIONAL;
      t.result = 'Actual events are undefined by the spec.';
    },
  });
});

// ---- 9.* Limits/Performance ----------------------------------------------------------------
const KiB = 1024;
const MiB = 1024 * 1024;
const sizeName = (n) => (n >= MiB ? `${n / MiB}M` : `${n / KiB}k`);
const sizeExpr = (n) => (n >= MiB ? `${n / MiB} * 2**20` : `${n / KiB} * 2**10`);
function bigMessageCase(id, { binary, len, waitSecs, send, description }) {
  const kind = binary ? 'binary' : 'text';
  add({
    id,
    description,
    expectation: `Receive echo'ed ${kind} message (with payload as sent).`,
    timeout: Math.min(waitSecs, DEFAULT_OPTIONS.maxWait) + 15,
    init(t) { t.reportTime = true; },
    onOpen(t) {
      t.behavior = FAILED;
      t.expectedClose = cleanClose();
      t.result = `Did not receive message within ${waitSecs} seconds.`;
      send(t.p);
      t.p.closeAfter(waitSecs);
    },
    // as published: only type and length are checked ("FIXME: check actual content")
    onMessage(t, msg, isBinary) {
      if (isBinary !== binary) {
        t.result = `Expected ${kind} message with payload, but got ${isBinary ? 'binary' : 'text'}.`;
      } else if (msg.length !== len) {
        t.result = `Expected ${kind} message with payload of length ${len}, but got ${msg.length}.`;
      } else {
        t.behavior = OK;
        t.result = `Received ${kind} message of length ${msg.length}.`;
      }
      t.p.sendClose(NORMAL);
    },
  });
}
[[64 * KiB, 10], [256 * KiB, 10], [1 * MiB, 100], [4 * MiB, 100], [8 * MiB, 100], [16 * MiB, 100]].forEach(([len, wait], i) => {
  for (const [sub, binary, opcode, pattern] of [[1, false, 1, b('BAsd7&jh23')], [2, true, 2, hex('00fe23faf0')]]) {
    bigMessageCase(`9.${sub}.${i + 1}`, {
      binary, len, waitSecs: wait,
      description: `Send ${binary ? 'binary' : 'text'} message message with payload of length ${sizeExpr(len)} (${sizeName(len)}).`,
      send: (p) => p.sendFrame({ opcode, payload: pattern, payloadLen: len }),
    });
  }
});
[64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB].forEach((frag, i) => {
  for (const [sub, binary, octet] of [[3, false, 0x2a], [4, true, 0xfe]]) {
    const len = 4 * MiB;
    bigMessageCase(`9.${sub}.${i + 1}`, {
      binary, len, waitSecs: 100,
      description: `Send fragmented ${binary ? 'binary' : 'text'} message message with message payload of length 4 * 2**20 (4M). Sent out in fragments of ${frag < KiB ? frag : sizeName(frag)}.`,
      send: (p) => p.sendMessage(fill(octet, len), binary, frag),
    });
  }
});
[64, 128, 256, 512, 1024, 2048].forEach((chop, i) => {
  for (const [sub, binary, opcode, pattern] of [[5, false, 1, b('BAsd7&jh23')], [6, true, 2, hex('00fe23faf0')]]) {
    bigMessageCase(`9.${sub}.${i + 1}`, {
      binary, len: MiB, waitSecs: 1000,
      description: `Send ${binary ? 'binary' : 'text'} message message with payload of length 1 * 2**20 (1M). Sent out data in chops of ${chop} octets.`,
      send: (p) => p.sendFrame({ opcode, payload: pattern, payloadLen: MiB, chopsize: chop }),
    });
  }
});
// 9.7.* (text) and 9.8.* (binary): round trips of 1000 messages, one in flight at a time
for (const binary of [false, true]) {
  [[0, 1000, 60], [16, 1000, 60], [64, 1000, 60], [256, 1000, 120], [1024, 1000, 240], [4096, 1000, 480]].forEach(([len, count, wait], i) => {
    const kind = binary ? 'binary' : 'text';
    add({
      id: `9.${binary ? 8 : 7}.${i + 1}`,
      description: `Send ${count} ${kind} messages of payload size ${len} to measure implementation/network RTT (round trip time) / latency.`,
      expectation: `Receive echo'ed ${kind} messages (with payload as sent). Timeout case after ${wait} secs.`,
      timeout: Math.min(wait, DEFAULT_OPTIONS.maxWait) + 15,
      init(t) { t.reportTime = true; t.count = 0; },
      onOpen(t) {
        t.behavior = FAILED;
        t.expectedClose = cleanClose();
        t.result = `Case did not finish within ${wait} seconds.`;
        t.p.closeAfter(wait);
        t.sendOne = () => {
          if (binary) t.p.sendFrame({ opcode: 2, payload: hex('fe'), payloadLen: len });
          else t.p.sendFrame({ opcode: 1, payload: b('*'), payloadLen: len });
          t.count += 1;
        };
        t.sendOne();
      },
      onMessage(t, msg, isBinary) {
        if (isBinary !== binary || msg.length !== len) {
          t.behavior = FAILED;
          t.result = `Echo'ed message type or length differs from what I sent (got binary = ${isBinary}, payload length = ${msg.length}).`;
          t.p.sendClose(NORMAL);
        } else if (t.count < count) {
          t.sendOne();
        } else {
          t.behavior = OK;
          t.result = "Ok, received all echo'ed messages in time.";
          t.p.sendClose(NORMAL);
        }
      },
    });
  });
}

// ---- 10.* Misc -----------------------------------------------------------------------------
add({
  id: '10.1.1',
  description: 'Send text message with payload of length 65536 auto-fragmented with <b>autoFragmentSize = 1300</b>.',
  expectation: "Receive echo'ed text message (with payload as sent and transmitted frame counts as expected). Clean close with normal code.",
  onOpen(t) {
    t.payload = fill(0x2a, 65536);
    t.p.autoFragmentSize = 1300;
    t.expected.set(OK, [['message', t.payload, false]]);
    t.expectedClose = cleanClose();
    t.p.sendMessage(t.payload);
    t.p.killAfter(10);
  },
  afterConnectionLost(t) {
    if (!t.p.connectionWasOpen) {
      t.behavior = FAILED;
      t.result = 'WebSocket connection was never open';
      return;
    }
    const exp = { 0: Math.floor(t.payload.length / t.p.autoFragmentSize), 1: t.payload.length % t.p.autoFragmentSize > 0 ? 1 : 0 };
    const got = { 0: t.p.txFrameStats[0] || 0, 1: t.p.txFrameStats[1] || 0 };
    if (exp[0] !== got[0] || exp[1] !== got[1]) {
      t.behavior = FAILED;
      t.result = `Frames transmitted ${JSON.stringify(got)} does not match what we expected ${JSON.stringify(exp)}.`;
    }
  },
});

// ---- ordering and selection (wstest's case pattern rules) -----------------------------------
const idTuple = (id) => id.split('.').map(Number);
function compareIds(a, b2) {
  const x = idTuple(a); const y = idTuple(b2);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d) return d;
  }
  return 0;
}
cases.sort((a, b2) => compareIds(a.id, b2.id));

// Patterns as in wstest's spec "cases"/"exclude-cases": '*' is a wildcard and the pattern
// matches from the start of the id ("6.4.*", "9.*"); without '*' the id must be equal.
function matches(pattern, id) {
  const p = pattern.trim();
  if (!p) return false;
  if (p.includes('*')) {
    const re = new RegExp('^' + p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*'));
    return re.test(id);
  }
  return p === id;
}
function selectCases(all, include, exclude) {
  const inc = (include || '*').split(',').filter((s) => s.trim());
  const exc = (exclude || '').split(',').filter((s) => s.trim());
  return all.filter((c) => inc.some((p) => matches(p, c.id)) && !exc.some((p) => matches(p, c.id)));
}

module.exports = { cases, selectCases, compareIds, UTF8_SUBCATEGORIES };
