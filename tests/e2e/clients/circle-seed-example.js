// Circle's complete Node example from its public document (shared/seeds/circle-websockets.txt,
// "WebSockets Connection Test" -> "Complete Implementation"), copied unchanged except for the
// lines marked "CHANGED" below. Why each one changed:
//  - the URL `wss://app.circle.so/cable` -> CABLE_URL (env) or argv[2]: the test points it at a
//    private wshubd (ws://127.0.0.1:<port>/cable).
//  - the Origin `https://your-whitelisted-domain.com` -> CABLE_ORIGIN (env) or argv[4]: the value
//    in wshubd's cable.allowed_origins.
//  - the token `HEADLESS_MEMBER_ACCESS_TOKEN` -> CABLE_TOKEN (env) or argv[3]: a JWT minted by the
//    test.
//  - COMMUNITY_MEMBER_ID: the document uses this placeholder without defining it ("Make sure to
//    replace the following variables with your actual values"), so it is defined from
//    COMMUNITY_MEMBER_ID (env) or argv[5] (a number, as the document's output shows it unquoted);
//    without a definition the example throws a ReferenceError in its open handler.
//  - the document's HTML wrapper (<strong>…</strong> around the first line) is dropped, and these
//    comment lines are added. Nothing else differs: same channel, same handlers, same output.
//
// Usage: CABLE_URL=ws://host:port/cable CABLE_TOKEN=<jwt> CABLE_ORIGIN=<origin> COMMUNITY_MEMBER_ID=<id> \
//          node circle-seed-example.js
//    or: node circle-seed-example.js <url> <token> <origin> <community_member_id>
const CABLE_URL = process.env.CABLE_URL || process.argv[2]; // CHANGED (added)
const CABLE_TOKEN = process.env.CABLE_TOKEN || process.argv[3]; // CHANGED (added)
const CABLE_ORIGIN = process.env.CABLE_ORIGIN || process.argv[4]; // CHANGED (added)
const COMMUNITY_MEMBER_ID = Number(process.env.COMMUNITY_MEMBER_ID || process.argv[5]); // CHANGED (added)

const WebSocket = require("ws");
const channelName = "ChatRoomChannel";

function initializeWebSocket() {
  const socket = new WebSocket(CABLE_URL, { // CHANGED: was "wss://app.circle.so/cable"
    headers: {
      Origin: CABLE_ORIGIN, // CHANGED: was "https://your-whitelisted-domain.com"
      Authorization: `Bearer ${CABLE_TOKEN}` // CHANGED: was "Bearer HEADLESS_MEMBER_ACCESS_TOKEN"
    }
  });

  // Handle connection open
  socket.on("open", function open() {
    console.log("WebSocket connection opened.");
    
    // Subscribe to channel
    const subscribeMessage = JSON.stringify({
      command: "subscribe",
      identifier: JSON.stringify({
        channel: channelName,
        community_member_id: COMMUNITY_MEMBER_ID
      })
    });
    
    socket.send(subscribeMessage);
  });

  // Handle incoming messages
  socket.on("message", function incoming(data) {
    const message = JSON.parse(data);
    if (message.channel === channelName) {
      console.log(`Message from channel ${channelName}:`, message.data);
    } else {
      console.log("Message from server:", message);
    }
  });

  // Handle errors
  socket.on("error", function error(err) {
    console.error("WebSocket error:", err);
  });

  // Handle connection close
  socket.on("close", function close() {
    console.log("WebSocket connection closed.");
    // Optional: Implement reconnection logic here
  });

  return socket;
}

// Initialize the WebSocket connection
const socket = initializeWebSocket();
