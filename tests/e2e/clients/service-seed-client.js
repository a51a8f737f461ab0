'use strict';
// A client of the WebSocket Service API written the way a client developer writes it from
// the public document alone (shared/seeds/websocket-service.txt): connect with the JWT in
// the `token` query parameter, JSON messages {type, data}, a switch over the documented
// event types, subscribe to a conversation, ping, and a reconnection strategy.
//
// Usage: node service-seed-client.js <ws://host:port/api/ws> <token> <channel>
// It prints one line per thing that happens: `<label>\t<the message as received>` for each
// server message, and OPEN / CLOSE / RECONNECT lines. It stops (closing with 1000) when its
// standard input ends or on SIGTERM.
const WebSocket = require('ws');

class WebSocketService {
  constructor(url, token) {
    this.url = url;
    this.token = token;
    this.socket = null;
    this.channels = new Set();
    this.reconnectAttempts = 0;
    this.maxReconnectAttempts = 5;
    this.closedByUser = false;
  }

  connect() {
    this.socket = new WebSocket(`${this.url}?token=${this.token}`);

    this.socket.onopen = () => {
      this.reconnectAttempts = 0;
      print('OPEN');
      // (Re)subscribe to every channel we care about, then check the connection.
      for (const channel of this.channels) this.send('subscribe', { channel });
      this.ping();
    };

    this.socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        print('UNPARSEABLE', String(event.data));
        return;
      }
      switch (message.type) {
        case 'notification':
          this.handleNotification(message);
          break;
        case 'chat_message':
          this.handleChatMessage(message);
          break;
        case 'status_update':
          this.handleStatusUpdate(message);
          break;
        case 'subscribed':
          print('SUBSCRIBED', JSON.stringify(message));
          break;
        case 'unsubscribed':
          print('UNSUBSCRIBED', JSON.stringify(message));
          break;
        case 'pong':
          print('PONG', JSON.stringify(message));
          break;
        case 'error':
          this.handleError(message);
          break;
        default:
          print('UNKNOWN', JSON.stringify(message));
      }
    };

    this.socket.onerror = (error) => {
      print('SOCKET_ERROR', error && error.message ? error.message : String(error));
    };

    this.socket.onclose = (event) => {
      print('CLOSE', `${event.code}\t${event.reason}`);
      if (!this.closedByUser) this.reconnect();
      else process.exit(0);
    };
  }

  // The recommended reconnection strategy: exponential backoff, a bounded number of tries.
  reconnect() {
    if (this.reconnectAttempts >= this.maxReconnectAttempts) {
      print('GIVE_UP', String(this.reconnectAttempts));
      process.exit(2);
    }
    const delay = Math.min(1000 * 2 ** this.reconnectAttempts, 30000);
    this.reconnectAttempts++;
    print('RECONNECT', String(delay));
    setTimeout(() => this.connect(), delay);
  }

  send(type, data) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type, data }));
    }
  }

  subscribe(channel) {
    this.channels.add(channel);
    this.send('subscribe', { channel });
  }

  unsubscribe(channel) {
    this.channels.delete(channel);
    this.send('unsubscribe', { channel });
  }

  ping() {
    this.send('ping', {});
  }

  handleNotification(message) {
    const { message: text, level } = message.data;
    print('NOTIFICATION', JSON.stringify(message), `${level}: ${text}`);
  }

  handleChatMessage(message) {
    const { conversation_id: conversationId, sender_id: senderId, content } = message.data;
    print('CHAT_MESSAGE', JSON.stringify(message), `[${conversationId}] ${senderId}: ${content}`);
  }

  handleStatusUpdate(message) {
    const { entity_type: entityType, entity_id: entityId, status } = message.data;
    print('STATUS_UPDATE', JSON.stringify(message), `${entityType} ${entityId} is ${status}`);
  }

  handleError(message) {
    const { code, message: text } = message.data;
    print('ERROR', JSON.stringify(message), `${code}: ${text}`);
  }

  disconnect() {
    this.closedByUser = true;
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.close(1000, 'bye');
    else process.exit(0);
  }
}

function print(label, ...rest) {
  process.stdout.write(`${[label, ...rest].join('\t')}\n`);
}

// ------------------------------------------------------------------ harness

const [url, token, channel] = process.argv.slice(2);
if (!url || !token || !channel) {
  process.stderr.write('usage: service-seed-client.js <url> <token> <channel>\n');
  process.exit(64);
}
const client = new WebSocketService(url, token);
client.channels.add(channel); // subscribed on open: the documented "conversation:conv-123" kind
client.connect();

const stop = () => {
  client.disconnect();
  setTimeout(() => process.exit(0), 2000).unref(); // do not hang on a peer that never closes
};
process.stdin.on('end', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
