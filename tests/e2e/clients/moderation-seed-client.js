'use strict';
// The Chatsight moderation client of the public document (shared/seeds/moderation-websocket.txt),
// completed the way a client developer completes it: the copy lost its closing braces, the
// try/catch of tryRender and the connect call. Its structure is kept: `websocket`'s
// WebSocketClient, tryRender, the connection.on('message') handler that reads
// render.response.metadata.self_reference and calls my_custom_callback_logic, and the class
// (my_class) whose moderate_comment(text, reference) sends {"sample", "reference"}.
//
// One change was needed for the document's code to run at all: it stores the bare method
// (`this.send_moderation_request = connection.sendUTF`) and calls it on the class instance,
// where sendUTF's `this._debug` does not exist (TypeError). The method is bound to its
// connection here; nothing else differs.
//
// Usage: node moderation-seed-client.js [url] [key] [reference=text ...]
//   url   ws://host:port/text/moderation   (or env MODERATION_URL)
//   key   the x-chatsight-api-auth key     (or env MODERATION_KEY)
//   each further argument is one comment: "<reference>=<text>" (the first '=' splits).
// Output, one line per event on stdout:
//   OPEN
//   ANSWER <tab> <reference> <tab> <action>      one per answer (action: pass|flag|delete|error)
//   CLOSE <tab> <code> <tab> <description>
//   CONNECT_FAILED <tab> <error>
// It exits 0 once every comment has its answer (after closing with 1000), 2 when the
// connection closes or fails first, 3 when the answers do not come within MODERATION_TIMEOUT_MS
// (default 10000).

const print = (...fields) => process.stdout.write(`${fields.join('\t')}\n`);

const argv = process.argv.slice(2);
const url = argv[0] || process.env.MODERATION_URL;
const key = argv[1] || process.env.MODERATION_KEY;
const comments = argv.slice(2).map((a) => {
  const i = a.indexOf('=');
  return i < 0 ? { reference: a, text: a } : { reference: a.slice(0, i), text: a.slice(i + 1) };
});
if (!url || key === undefined) {
  process.stderr.write('usage: moderation-seed-client.js <ws-url> <api-key> [reference=text ...]\n');
  process.exit(64);
}
const timeoutMs = Number(process.env.MODERATION_TIMEOUT_MS || 10000);

// Answers still expected, by reference.
const outstanding = new Map(comments.map((c) => [c.reference, c.text]));
let instance = null;

// "Your custom logic, using reference to find the content, and then passing the typical
// moderation response."
const my_custom_callback_logic = async ({ comment_id, data }) => {
  const action = data && data.success === true && data.response && Array.isArray(data.response.suggestedAction)
    ? data.response.suggestedAction[0]
    : 'error';
  print('ANSWER', comment_id, action);
  outstanding.delete(comment_id);
  if (outstanding.size === 0 && instance) instance.finish();
};

const main = async () => {
    var WebSocketClient = require('websocket').client;
    var client = new WebSocketClient();
    var tryRender = async message => {
        try {
            var parse = JSON.parse(message)
            return parse
        } catch (e) {
            return false
        }
    }

    /*
        In production, we recommend you make this into a class,
        and assign the connection reference to the classes property
        so you can call it outside of this event listener.
    */
    class my_class {
        constructor() {
            this.send_moderation_request = null
            this.connection = null
        }

        async startconnection() {
            return new Promise((resolve, reject) => {
                client.on('connect', async connection => {
                    this.connection = connection
                    print('OPEN')
                    connection.on('message', async message => {
                        if(message.type === 'utf8') {
                            if(typeof message.utf8Data !== 'string') return;
                            var render = await tryRender(message.utf8Data)
                            if(render === false) return;
                            var reference = render.response.metadata.self_reference
                            // Your custom logic, using reference to find the content, and then passing the typical moderation response.
                            await my_custom_callback_logic({comment_id: reference, data: render})
                        }
                    })
                    connection.on('close', function(code, description) {
                        // Custom Logic to handle web sockets being closed, and handling auth failures.
                        print('CLOSE', code, description || '')
                        process.exit(outstanding.size === 0 ? 0 : 2)
                    })
                    // The document: `this.send_moderation_request = connection.sendUTF` (bound, see the top).
                    this.send_moderation_request = connection.sendUTF.bind(connection)
                    resolve()
                })
                client.on('connectFailed', error => {
                    print('CONNECT_FAILED', error && error.message ? error.message : String(error))
                    reject(error)
                })
                client.connect(url, null, null, {'x-chatsight-api-auth': key})
            })
        }

        async moderate_comment(text, reference) {
            await this.send_moderation_request(JSON.stringify({"sample":text,"reference":reference}))
        }

        finish() {
            if (this.connection && this.connection.connected) this.connection.close()
            else process.exit(0)
        }
    }

    instance = new my_class()
    await instance.startconnection()
    // "If the connection was not closed promptly, you may start sending messages over the
    // channel immediately."
    for (const c of comments) await instance.moderate_comment(c.text, c.reference)
    if (comments.length === 0) instance.finish()
}

setTimeout(() => {
  print('TIMEOUT', [...outstanding.keys()].join(','));
  process.exit(3);
}, timeoutMs).unref();

main().catch(k => {
    print('ERROR', k && k.message ? k.message : String(k))
    process.exit(2)
})
