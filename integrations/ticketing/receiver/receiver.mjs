// receiver.mjs: a minimal receiver of entra-revoke's outcome callbacks for anything that is not
// ServiceNow. It verifies the Standard Webhooks signature, refuses stale timestamps, drops
// duplicates by webhook-id, and writes each new event as one JSON line on stdout, for a pipe into
// whatever updates the ticket:
//
//   CALLBACK_SECRETS=whsec_… PORT=8080 node receiver.mjs | while read -r event; do …; done
//
// Node.js 20 or later, no dependencies. Settings (environment):
//   CALLBACK_SECRETS  the handler's CALLBACK_SECRETS (comma-separated during a rotation)
//   PORT              port to listen on (default 8080; 0 picks a free one), HOST (default 127.0.0.1:
//                     put it behind your HTTPS reverse proxy; entra-revoke calls https only)
//   TOLERANCE_SECONDS allowed clock difference for webhook-timestamp (default 300)
// Answers: 204 new event, 200 duplicate, 401 signature or timestamp, 400 not an event, 413 too big.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const maxBody = 256 * 1024;
const tolerance = Number(process.env.TOLERANCE_SECONDS || 300);
const keys = (process.env.CALLBACK_SECRETS || "")
  .split(",")
  .map((s) => s.trim())
  .filter((s) => s.startsWith("whsec_"))
  .map((s) => Buffer.from(s.slice(6), "base64"));
if (keys.length === 0) {
  console.error("receiver: set CALLBACK_SECRETS to the handler's whsec_ secret(s)");
  process.exit(2);
}

// Ids of the events seen, oldest first, bounded: entra-revoke retries an event for about ten
// hours, far fewer than this many events apart.
const seen = new Set();
const maxSeen = 10000;

function verified(id, timestamp, body, header) {
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), body]);
  for (const key of keys) {
    const want = createHmac("sha256", key).update(signed).digest();
    for (const part of String(header).split(" ")) {
      if (!part.startsWith("v1,")) continue;
      const got = Buffer.from(part.slice(3), "base64");
      if (got.length === want.length && timingSafeEqual(got, want)) return true;
    }
  }
  return false;
}

const server = createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > maxBody) {
      res.writeHead(413).end();
      req.destroy();
      return;
    }
    chunks.push(c);
  });
  req.on("end", () => {
    if (res.writableEnded) return;
    const body = Buffer.concat(chunks);
    const id = req.headers["webhook-id"] || "";
    const timestamp = req.headers["webhook-timestamp"] || "";
    if (req.method !== "POST" || !/^[\x21-\x7e]{1,256}$/.test(id) || !/^[0-9]{1,12}$/.test(timestamp) ||
        !verified(id, timestamp, body, req.headers["webhook-signature"] || "")) {
      res.writeHead(401).end();
      return;
    }
    if (Math.abs(Date.now() / 1000 - Number(timestamp)) > tolerance) {
      res.writeHead(401).end();
      return;
    }
    let event;
    try {
      event = JSON.parse(body.toString("utf8"));
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (!event || typeof event.type !== "string" || typeof event.data !== "object") {
      res.writeHead(400).end();
      return;
    }
    if (seen.has(id)) {
      res.writeHead(200).end();
      return;
    }
    seen.add(id);
    if (seen.size > maxSeen) seen.delete(seen.values().next().value);
    process.stdout.write(JSON.stringify({ id, type: event.type, timestamp: event.timestamp, data: event.data }) + "\n");
    res.writeHead(204).end();
  });
});

server.listen(Number(process.env.PORT ?? 8080), process.env.HOST || "127.0.0.1", () => {
  const { address, port } = server.address();
  console.error(`receiver: listening on http://${address}:${port}`);
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
