#!/usr/bin/env python3
"""Writes the hand-made seed inputs of tests/fuzz/corpus/<target>/ (issue 11).

Run from the repository root: python3 tests/fuzz/seeds.py. Tokens are signed with the
fuzzing configuration's secret (harness.h: fuzz-secret) or the test EC key (keys/), with exp
in 2100, so that they stay valid. The fuzzer's own inputs kept in the corpus (findings,
named issue*, and outq/burst-17k-entries, outq/window-stall) are not written here.
"""
import base64, hashlib, hmac, json, os, struct, subprocess, tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
SECRET = b'fuzz-secret'
EXP = 4102444800  # 2100-01-01
MASK = bytes([0x37, 0xfa, 0x21, 0x3d])


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()


def hs_token(claims, alg='HS256', secret=SECRET, header=None):
    h = header or {'alg': alg, 'typ': 'JWT'}
    si = b64u(json.dumps(h, separators=(',', ':')).encode()) + '.' + b64u(json.dumps(claims, separators=(',', ':')).encode())
    dig = {'HS256': hashlib.sha256, 'HS384': hashlib.sha384, 'HS512': hashlib.sha512}.get(alg, hashlib.sha256)
    return si + '.' + b64u(hmac.new(secret, si.encode(), dig).digest())


def es_token(claims):
    si = b64u(b'{"alg":"ES256","typ":"JWT"}') + '.' + b64u(json.dumps(claims, separators=(',', ':')).encode())
    key = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'keys', 'ec256-private.pem')
    der = subprocess.run(['openssl', 'dgst', '-sha256', '-sign', key], input=si.encode(), capture_output=True,
                         check=True).stdout
    # DER SEQUENCE { INTEGER r, INTEGER s } -> r || s, 32 bytes each
    i = 2 + (1 if der[1] & 0x80 else 0)
    rl = der[i + 1]; r = der[i + 2:i + 2 + rl]; i += 2 + rl
    sl = der[i + 1]; s = der[i + 2:i + 2 + sl]
    raw = r.lstrip(b'\0').rjust(32, b'\0') + s.lstrip(b'\0').rjust(32, b'\0')
    return si + '.' + b64u(raw)


def frame(payload, opcode=1, fin=True, mask=True, rsv=0):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    b = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    m = 0x80 if mask else 0
    if n < 126:
        b += bytes([m | n])
    elif n < 65536:
        b += bytes([m | 126]) + struct.pack('>H', n)
    else:
        b += bytes([m | 127]) + struct.pack('>Q', n)
    if mask:
        b += MASK + bytes(c ^ MASK[i & 3] for i, c in enumerate(payload))
    else:
        b += payload
    return b


def close(code=1000, reason=b''):
    return frame(struct.pack('>H', code) + reason, opcode=8)


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())


USER = hs_token({'sub': 'alice', 'exp': EXP})
MEMBER = hs_token({'sub': '42', 'community_member_id': 42, 'exp': EXP})


def req(method, target, headers=(), body=b''):
    h = ''.join(f'{k}: {v}\r\n' for k, v in headers)
    if body and not any(k.lower() in ('content-length', 'transfer-encoding') for k, _ in headers):
        h += f'Content-Length: {len(body)}\r\n'
    return f'{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{h}\r\n'.encode() + (body if isinstance(body, bytes) else body.encode())


def upgrade(target, headers=()):
    return req('GET', target, [('Upgrade', 'websocket'), ('Connection', 'Upgrade'),
                               ('Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='), ('Sec-WebSocket-Version', '13')]
               + list(headers))


# ------------------------------------------------------------------ http (byte 0: chunk | 0x80 RST)
def http_seeds():
    pub = json.dumps({'channel': 'conversation:c1', 'event': 'chat_message', 'data': {'content': 'hi'}})
    mod = json.dumps({'sample': 'you are an idiot, call 555-0100', 'reference': 'r1'})
    s = {
        'get-healthz': b'\x00' + req('GET', '/healthz'),
        'pipelined-gets': b'\x00' + req('GET', '/healthz') + req('GET', '/metrics') + req('GET', '/nope')
                          + req('DELETE', '/healthz') + req('GET', '/healthz', [('Connection', 'close')]),
        'pipelined-bytewise': b'\x01' + req('GET', '/healthz') + req('GET', '/healthz'),
        'publish': b'\x00' + req('POST', '/api/publish', [('Authorization', 'Bearer fuzz-api-key'),
                                                          ('Content-Type', 'application/json')], pub),
        'publish-channels-bad-key': b'\x00' + req('POST', '/api/publish', [('Authorization', 'Bearer nope')],
                                                  '{"channels":["a:b","c"],"event":"x"}'),
        'publish-chunked': b'\x05' + req('POST', '/api/publish', [('Authorization', 'Bearer fuzz-api-key'),
                                                                  ('Transfer-Encoding', 'chunked')],
                                         f'{len(pub):x}\r\n{pub}\r\n0\r\n\r\n'),
        'moderation-post-pipelined': b'\x00' + req('POST', '/text/moderation', [('x-chatsight-api-auth', 'fuzz-mod-key')], mod)
                                     + req('GET', '/healthz'),
        'moderation-post-then-rst': b'\x80' + req('POST', '/text/moderation', [('x-chatsight-api-auth', 'fuzz-mod-key')], mod),
        'moderation-post-no-key': b'\x00' + req('POST', '/text/moderation', [], '{"sample":"x"}'),
        'socket-info': b'\x00' + req('GET', '/socket.info?clientId=fuzz&sessionId=s1', [('Origin', 'http://x')])
                       + req('OPTIONS', '/socket.info', [('Origin', 'http://x'), ('Access-Control-Request-Method', 'GET')]),
        'thread-history': b'\x00' + req('GET', '/thread.history', [('x-flowai-clientid', 'fuzz'), ('x-flowai-threadid', 't1')]),
        'expect-100-big': b'\x00' + req('POST', '/api/publish', [('Expect', '100-continue'), ('Content-Length', '99999999')]),
        'bad-request': b'\x00GET / HTTP/9.9\r\n\x01\r\n\r\n',
        'examples-page': b'\x00' + req('GET', '/examples/flow.html'),
        'upgrade-echo-frames': b'\x00' + upgrade('/echo') + frame('hello') + frame(b'\x00\xff', 2) + frame('', 9) + close(),
        'upgrade-echo-bytewise': b'\x01' + upgrade('/echo') + frame('hi') + close(),
        'upgrade-service': b'\x00' + upgrade('/api/ws?token=' + USER)
                           + frame('{"type":"subscribe","data":{"channel":"conversation:c1"}}')
                           + frame('{"type":"chat_message","data":{"conversation_id":"c1","content":"x"}}'),
        'upgrade-service-bad-token': b'\x00' + upgrade('/api/ws', [('Authorization', 'Bearer a.b.c')]),
        'upgrade-cable': b'\x00' + upgrade('/cable', [('Authorization', 'Bearer ' + MEMBER),
                                                     ('Sec-WebSocket-Protocol', 'actioncable-v1-json, actioncable-unsupported'),
                                                     ('Origin', 'https://app.example.com')])
                         + frame(json.dumps({'command': 'subscribe', 'identifier': json.dumps({'channel': 'ChatRoomChannel', 'community_member_id': 42})})),
        'upgrade-moderation': b'\x00' + upgrade('/text/moderation', [('x-chatsight-api-auth', 'fuzz-mod-key')]) + frame(mod),
        'upgrade-moderation-no-key': b'\x00' + upgrade('/text/moderation'),
        'upgrade-flow-unknown': b'\x00' + upgrade('/ws/abcdef'),
        'upgrade-bad-version': b'\x00' + req('GET', '/echo', [('Upgrade', 'websocket'), ('Connection', 'keep-alive, Upgrade'),
                                                             ('Sec-WebSocket-Key', 'short'), ('Sec-WebSocket-Version', '8')]),
    }
    for k, v in s.items():
        write('http', k, v)


# ------------------------------------------------------------------ frames (byte 0: api << 4 | chunk)
def frames_seeds():
    ECHO, SERVICE, CABLE, MOD, FLOW = range(5)
    s = {
        'echo-text-binary': (ECHO, 0, frame('hello') + frame(b'\x01\x02\x03', 2) + close()),
        'echo-fragmented': (ECHO, 3, frame('hel', fin=False) + frame('', 9) + frame('lo', 0) + close(1000, b'bye')),
        'echo-utf8-split': (ECHO, 1, frame('\u00e9\u20ac'.encode()[:3], fin=False) + frame('\u00e9\u20ac'.encode()[3:], 0)),
        'echo-invalid-utf8': (ECHO, 0, frame(b'\xc3\x28') + frame('after')),
        'echo-surrogate': (ECHO, 0, frame(b'\xed\xa0\x80')),
        'echo-unmasked': (ECHO, 0, frame('x', mask=False)),
        'echo-rsv-opcode': (ECHO, 0, frame('x', rsv=4) + frame('y', opcode=3)),
        'echo-ping-pong': (ECHO, 0, frame('p', 9) + frame('q', 10) + frame('x' * 126, 9)),
        'echo-big-message': (ECHO, 10, frame('a' * 17000)),
        'echo-fragments-over-limit': (ECHO, 9, frame('a' * 9000, fin=False) + frame('b' * 9000, 0)),
        'echo-declared-huge': (ECHO, 0, b'\x81\xff' + struct.pack('>Q', 1 << 40) + MASK + b'abcd'),
        'echo-close-bad-code': (ECHO, 0, close(1005) + close(999)),
        'echo-close-1byte': (ECHO, 0, frame(b'\x03', 8)),
        'echo-burst': (ECHO, 0, b''.join(frame(f'm{i}') for i in range(300))),
        'echo-cont-without-start': (ECHO, 0, frame('x', 0)),
        'service-burst': (SERVICE, 0, frame('{"type":"subscribe","data":{"channel":"conversation:c1"}}')
                          + b''.join(frame('{"type":"chat_message","data":{"conversation_id":"c1","content":"x"}}') for _ in range(40))),
        'cable-subscribe': (CABLE, 7, frame(json.dumps({'command': 'subscribe', 'identifier': '{"channel":"NotificationChannel","community_member_id":42}'}))),
        'moderation-requests': (MOD, 0, frame('{"sample":"hello","reference":"a"}') + frame('{"sample":"sh1t","reference":"b"}')),
        'flow-ping': (FLOW, 0, frame('{"type":"ping"}') + frame('{"type":"message.send","payload":{"threadId":"t","speech":"hi","originator":{"name":"u"}}}')),
        'rst-mid-frame': (ECHO, 0x8, frame('hello')[:4]),
    }
    for k, (api, chunk, data) in s.items():
        write('frames', k, bytes([(api << 4) | (chunk & 0x8f)]) + data)


# ------------------------------------------------------------------ each API's commands (lines)
def api_seeds():
    lines = {
        'service': {
            'subscribe-cycle': ['{"type":"subscribe","data":{"channel":"conversation:conv-123"}}',
                                '{"type":"subscribe","data":{"channel":"conversation:conv-123"}}',
                                '{"type":"unsubscribe","data":{"channel":"conversation:conv-123"}}',
                                '{"type":"unsubscribe","data":{"channel":"task:none"}}'],
            'ping': ['{"type":"ping"}', '{"type":"ping","data":{}}', '{"type":"ping","data":[]}'],
            'chat': ['{"type":"subscribe","data":{"channel":"conversation:c1"}}',
                     '{"type":"chat_message","data":{"conversation_id":"c1","content":"hello"}}',
                     '{"type":"chat_message","data":{"conversation_id":5}}'],
            'denied-and-bad': ['{"type":"subscribe","data":{"channel":"user:bob"}}', '{"type":"subscribe","data":{"channel":"nocolon"}}',
                               '{"type":"subscribe","data":{}}', '{"type":"nope"}', '[1,2]', 'not json', '{"type":7}',
                               '{"type":"subscribe","data":{"channel":"' + 'x' * 300 + ':1"}}'],
            'over-limit': ['{"type":"subscribe","data":{"channel":"c:%d"}}' % i for i in range(10)],
        },
        'cable': {
            'subscribe-each-channel': [json.dumps({'command': 'subscribe', 'identifier': json.dumps(i)}) for i in (
                {'channel': 'NotificationChannel', 'community_member_id': 42},
                {'channel': 'ChatRoomChannel', 'community_member_id': '42'},
                {'channel': 'Chats::RoomChannel', 'chat_room_id': 7},
                {'channel': 'Chats::CommunityMemberThreadsChannel', 'community_member_id': 42})],
            'identifiers': ['{"channel":"ChatRoomChannel","community_member_id":42}',
                            '{"community_member_id":42,"channel":"ChatRoomChannel"}',
                            '{"channel":"ChatRoomChannel","community_member_id":43}',
                            '{"channel":"Unknown"}', '{"channel":1}', 'not json', '[]',
                            '{"channel":"Chats::RoomChannel","chat_room_id":"x\\u0041"}',
                            '{"channel":"NotificationChannel","community_member_id":4.2e1}'],
            'unsubscribe-message': [json.dumps({'command': 'subscribe', 'identifier': '{"channel":"ChatRoomChannel","community_member_id":42}'}),
                                    json.dumps({'command': 'message', 'identifier': '{"channel":"ChatRoomChannel","community_member_id":42}', 'data': '{"a":1}'}),
                                    json.dumps({'command': 'unsubscribe', 'identifier': '{"channel":"ChatRoomChannel","community_member_id":42}'}),
                                    json.dumps({'command': 'unsubscribe', 'identifier': 'x'}),
                                    '{"command":"nope"}', '{"identifier":5}', '{}'],
        },
        'moderation': {
            'requests': ['{"sample":"hello world","reference":"comment-1"}',
                         '{"sample":"Y0U 4R3 4N 1D10T!!! visit http://x.example now","reference":"c2"}',
                         '{"sample":"call me at +1 555 010 0199 or a@b.example","reference":null}',
                         '{"sample":"SHOUTING SHOUTING SHOUTING spam spam spam spam"}'],
            'errors': ['{"reference":"r"}', '{"sample":5,"reference":"r"}', 'not json', '[]',
                       '{"sample":"' + 'a' * 2100 + '","reference":"long"}'],
        },
        'flow': {
            'ping-send': ['{"type":"ping"}',
                          '{"type":"message.send","payload":{"threadId":"t1","speech":"hello","originator":{"name":"u","role":"external"},"metadata":{"language":"en"},"nonce":"n1"}}',
                          '{"type":"thread.noticed","payload":{"threadId":"t1"}}',
                          '{"type":"activity.user.typing","payload":{"threadId":"t1"}}',
                          '{"type":"log","payload":{}}'],
            'errors': ['{"type":"message.send","payload":{"speech":"x"}}', '{"type":"message.send"}', '{"type":"nope"}',
                       'not json', '{"type":"message.send","payload":{"threadId":"t2","speech":"x","attachment":{"type":"event","payload":{"name":"go"}}}}'],
            'history-limit': ['{"type":"message.send","payload":{"threadId":"t3","speech":"m%d"}}' % i for i in range(12)],
        },
    }
    for target, seeds in lines.items():
        for k, ls in seeds.items():
            write(target, k, b'\x00' + '\n'.join(ls).encode())
            write(target, k + '-bytewise', b'\x01' + '\n'.join(ls[:2]).encode())


# ------------------------------------------------------------------ jwt (byte 0: mode)
def jwt_seeds():
    good = {'sub': 'alice', 'iss': 'wshub-fuzz', 'aud': 'wshub', 'exp': EXP, 'nbf': 1600000000}
    s = {
        'hs-valid': (0, hs_token(good)),
        'hs-aud-array': (0, hs_token(dict(good, aud=['x', 'wshub']))),
        'hs512': (0, hs_token(good, 'HS512')),
        'hs-expired': (0, hs_token(dict(good, exp=1600000000))),
        'hs-not-yet': (0, hs_token(dict(good, nbf=1800000000))),
        'hs-no-exp': (0, hs_token({'sub': 'a', 'iss': 'wshub-fuzz', 'aud': 'wshub'})),
        'hs-bad-iss': (0, hs_token(dict(good, iss='evil'))),
        'hs-bad-sig': (0, hs_token(good, secret=b'wrong')),
        'hs-alg-none': (0, hs_token(good, header={'alg': 'none'})[:-43]),
        'hs-crit': (0, hs_token(good, header={'alg': 'HS256', 'crit': ['x']})),
        'hs-float-exp': (0, hs_token(dict(good, exp=4102444800.5))),
        'hs-dup-member': (0, b64u(b'{"alg":"HS256","alg":"HS256"}') + '.' + b64u(b'{}') + '.AAAA'),
        'malformed': (0, 'a.b'),
        'es-valid': (1, es_token({'sub': 'alice'})),
        'es-with-hs': (1, hs_token(good)),
        'bearer': (2, 'Bearer ' + hs_token(good)),
        'bearer-spaces': (2, '  bEaReR \t' + hs_token(good) + ' '),
        'basic': (2, 'Basic dXNlcjpwYXNz'),
        'origin-ok': (3, 'https://APP.example.com'),
        'origin-other': (3, 'https://app.example.com.evil'),
    }
    for k, (mode, text) in s.items():
        write('jwt', k, bytes([mode]) + text.encode())


# ------------------------------------------------------------------ config (file \0 env lines)
def config_seeds():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, '..', '..', 'config', 'wshub.example.json'), 'rb') as f:
        write('config', 'example', f.read())
    s = {
        'minimal': b'{}',
        'nested': json.dumps({'listen': '[::1]:8080', 'limits': {'max_message_bytes': 1024}, 'auth': {
            'jwt_secret': 's', 'algorithms': ['HS256', 'HS512'], 'issuer': 'i', 'audience': 'a', 'leeway_s': 0}}).encode(),
        'bad-types': json.dumps({'workers': -1, 'http': {'max_headers': 'x'}}).encode(),
        'unknown-key': b'{"limits":{"nope":1}}',
        'duplicate': b'{"workers":1,"workers":2}',
        'env-overrides': b'{"echo":{"enabled":false}}\0WSHUB_LISTEN=127.0.0.1:9\nWSHUB_WORKERS=3\nWSHUB_AUTH_ALGORITHMS=HS256,RS256\n'
                         b'WSHUB_CABLE_ALLOWED_ORIGINS=a,b,,c\nWSHUB_LOG_LEVEL=debug\nWSHUB_LIMITS_MAX_QUEUED_BYTES=99999999999999999999',
        'env-bad': b'{}\0WSHUB_WORKERS=abc\nWSHUB_ECHO_ENABLED=maybe\nWSHUB_SERVICE_DEFAULT_POLICY=deny',
        'not-object': b'[1,2,3]',
        'truncated': b'{"listen": "127.0.0.1:',
    }
    for k, v in s.items():
        write('config', k, v)


# ------------------------------------------------------------------ outq (ops: low 3 bits op, high 5 arg)
def outq_seeds():
    def op(o, arg=0, *nxt):
        return bytes([(arg << 3) | o]) + bytes(nxt)
    s = {
        'copies-and-frames': op(0, 0, 100) + op(1, 1, 0) + op(3, 2) + op(5) + op(0, 31, 255) + op(3, 3) + op(5),
        'partial-reads': op(1, 31, 255) + op(3, 1) + op(4, 0, 3) + op(3, 1) + op(4, 0, 10) + op(7) + op(5),
        'burst-past-256': op(2, 1, 60) + op(3, 0) + op(5),
        'burst-mixed': op(2, 17, 100) + op(3, 0) + op(4, 0, 1) + op(3, 0) + op(2, 20, 200) + op(3, 4) + op(5),
        'close-after-write': op(1, 7, 0) + op(2, 3, 10) + op(6) + op(3, 2) + op(5),
        'overflow': b''.join(op(1, 31, 255) for _ in range(40)) + op(3, 3) + op(5),
        'partial-sends': b''.join(op(1, 31, 255) for _ in range(14)) + op(3, 7) + op(4, 0, 255)
                         + (op(3, 7) + op(5)) * 3,
    }
    for k, v in s.items():
        write('outq', k, v)


if __name__ == '__main__':
    http_seeds(); frames_seeds(); api_seeds(); jwt_seeds(); config_seeds(); outq_seeds()
