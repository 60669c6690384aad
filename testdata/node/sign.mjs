// sign.mjs signs the body read from stdin with the standardwebhooks package, an implementation
// independent of ours, and prints the three headers as one JSON object. Go tests use it to check
// that what our code verifies is what the wider ecosystem produces.
//
//   node sign.mjs --secret whsec_... --id msg_... --timestamp 1763769541 < body
import { parseArgs } from "node:util";
import { Webhook } from "standardwebhooks";

const { values } = parseArgs({
  options: {
    secret: { type: "string" },
    id: { type: "string" },
    timestamp: { type: "string" },
  },
  strict: true,
});
for (const name of ["secret", "id", "timestamp"]) {
  if (!values[name]) {
    console.error(`sign.mjs: --${name} is required`);
    process.exit(2);
  }
}
if (!/^[0-9]+$/.test(values.timestamp)) {
  console.error("sign.mjs: --timestamp must be Unix seconds");
  process.exit(2);
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const body = Buffer.concat(chunks);

const at = new Date(Number(values.timestamp) * 1000);
const signature = new Webhook(values.secret).sign(values.id, at, body);
process.stdout.write(
  JSON.stringify({
    "webhook-id": values.id,
    "webhook-timestamp": values.timestamp,
    "webhook-signature": signature,
  }) + "\n",
);
