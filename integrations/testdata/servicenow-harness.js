// servicenow-harness.js runs the EntraRevoke Script Include outside ServiceNow, for the Go tests.
// It provides the few ServiceNow APIs the script uses, implemented from their documented behaviour:
//   GlideCertificateEncryption.generateMac(base64Key, "HmacSHA256", data) -> base64 HMAC of the
//     UTF-8 bytes of data under the base64-decoded key
//   gs.getProperty, gs.generateGUID (32 hex digits), gs.getUserName
//   GlideDateTime.getNumericValue (milliseconds since the epoch)
//   sn_ws.RESTMessageV2 (recorded here instead of sent: the Go test sends it to the handler)
//   Class.create (Prototype's class factory: the constructor calls initialize)
//
// usage: node servicenow-harness.js SCRIPT.js < {"properties": {...}, "args": [upn, ticket, reason, requestId]}
// prints {"request": {endpoint, method, headers, body, timeoutMs}, "result": {...}}
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const vm = require("node:vm");

const input = JSON.parse(fs.readFileSync(0, "utf8"));
const source = fs.readFileSync(process.argv[2], "utf8");

const sent = [];
class RESTMessageV2 {
  constructor() { this.req = { headers: {} }; sent.push(this.req); }
  setEndpoint(u) { this.req.endpoint = u; }
  setHttpMethod(m) { this.req.method = m; }
  setRequestHeader(k, v) { this.req.headers[k] = v; }
  setRequestBody(b) { this.req.body = b; }
  setHttpTimeout(ms) { this.req.timeoutMs = ms; }
  execute() { return { getStatusCode: () => 200, getBody: () => "{}" }; }
}

const context = {
  JSON, Math, String, Error, Number, Object, Array, RegExp,
  Class: {
    create() {
      return function () { this.initialize.apply(this, arguments); };
    },
  },
  GlideCertificateEncryption: function () {
    this.generateMac = (key, algorithm, data) => {
      if (algorithm !== "HmacSHA256") throw new Error("harness: unexpected algorithm " + algorithm);
      const raw = Buffer.from(key, "base64");
      if (raw.length === 0 || raw.toString("base64").replace(/=+$/, "") !== key.replace(/=+$/, "")) {
        throw new Error("harness: generateMac key is not base64");
      }
      return crypto.createHmac("sha256", raw).update(Buffer.from(String(data), "utf8")).digest("base64");
    };
  },
  GlideDateTime: function () {
    this.getNumericValue = () => Date.now();
  },
  gs: {
    getProperty: (name) => (name in input.properties ? input.properties[name] : null),
    generateGUID: () => crypto.randomBytes(16).toString("hex"),
    getUserName: () => "itil.agent",
  },
  sn_ws: { RESTMessageV2 },
};
vm.createContext(context);
vm.runInContext(source + "\n;globalThis.__EntraRevoke = EntraRevoke;", context, { filename: process.argv[2] });

const result = new context.__EntraRevoke().revoke(...input.args);
if (sent.length !== 1) throw new Error("harness: want exactly one request, got " + sent.length);
process.stdout.write(JSON.stringify({ request: sent[0], result }) + "\n");
