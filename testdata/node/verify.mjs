// verify.mjs checks a signature with the standardwebhooks package, an implementation independent
// of ours. It reads {"secret": "whsec_...", "headers": {...}, "body": "..."} on stdin, prints "ok"
// and exits 0 when Webhook.verify accepts it, and exits 1 with the library's error otherwise.
// The library checks webhook-timestamp against the real clock with a 5 minute tolerance, so only
// freshly signed messages can pass.
import { Webhook } from "standardwebhooks";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);

let input;
try {
  input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
} catch (err) {
  console.error(`verify.mjs: input is not JSON: ${err.message}`);
  process.exit(2);
}
if (typeof input.secret !== "string" || typeof input.body !== "string" ||
    typeof input.headers !== "object" || input.headers === null) {
  console.error("verify.mjs: want {secret: string, headers: object, body: string}");
  process.exit(2);
}

try {
  // jsonParse: false, because the body need not be JSON for its signature to be valid.
  new Webhook(input.secret).verify(input.body, input.headers, { jsonParse: false });
} catch (err) {
  console.error(`${err.name}: ${err.message}`);
  process.exit(1);
}
process.stdout.write("ok\n");
