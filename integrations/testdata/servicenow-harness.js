// servicenow-harness.js runs the EntraRevoke Script Include outside ServiceNow, for the Go tests.
// It provides the few ServiceNow APIs the script uses, implemented from their documented behaviour:
//   GlideCertificateEncryption.generateMac(base64Key, "HmacSHA256", data) -> base64 HMAC of the
//     UTF-8 bytes of data under the base64-decoded key
//   gs.getProperty, gs.generateGUID (32 hex digits), gs.getUserName
//   GlideDateTime.getNumericValue (milliseconds since the epoch)
//   sn_ws.RESTMessageV2 (recorded here instead of sent: the Go test sends it to the handler)
//   Class.create (Prototype's class factory: the constructor calls initialize)
//
//   sn_ws.RESTMessageV2's response: getStatusCode, getBody, getHeader, answered from "responses"
//     in order (default 200 "{}")
//
// usage: node servicenow-harness.js SCRIPT.js < {"properties": {...}, "method": "revoke"|"status",
//          "args": [...], "responses": [{"status": 202, "headers": {...}, "body": "..."}]}
// prints {"request": first request, "requests": [{endpoint, method, headers, body, timeoutMs}], "result": {...}}
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const vm = require("node:vm");

const input = JSON.parse(fs.readFileSync(0, "utf8"));
const source = fs.readFileSync(process.argv[2], "utf8");

const sent = [];
const responses = input.responses || [];
class RESTMessageV2 {
  constructor() { this.req = { headers: {} }; sent.push(this.req); }
  setEndpoint(u) { this.req.endpoint = u; }
  setHttpMethod(m) { this.req.method = m; }
  setRequestHeader(k, v) { this.req.headers[k] = v; }
  setRequestBody(b) { this.req.body = b; }
  setHttpTimeout(ms) { this.req.timeoutMs = ms; }
  execute() {
    const r = responses.shift() || { status: 200, headers: {}, body: "{}" };
    const headers = {};
    for (const [k, v] of Object.entries(r.headers || {})) headers[k.toLowerCase()] = v;
    return {
      getStatusCode: () => r.status,
      getBody: () => r.body,
      // RESTResponseV2.getHeader: the header's value, case-insensitive name; null when absent.
      getHeader: (name) => (name.toLowerCase() in headers ? headers[name.toLowerCase()] : null),
    };
  }
}

const context = {
  JSON, Math, String, Error, Number, Object, Array, RegExp, parseInt, isNaN,
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

const method = input.method || "revoke";
const result = new context.__EntraRevoke()[method](...input.args);
if (sent.length !== 1) throw new Error("harness: want exactly one request, got " + sent.length);
process.stdout.write(JSON.stringify({ request: sent[0], requests: sent, result }) + "\n");
