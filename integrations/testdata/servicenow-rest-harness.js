// servicenow-rest-harness.js runs a Scripted REST resource script (EntraRevokeCallback.js) outside
// ServiceNow, for the Go tests, with the few ServiceNow APIs it uses implemented from their
// documented behaviour:
//   RESTAPIRequest: getHeader(name) (case-insensitive), body.dataString, queryParams (name -> [values])
//   RESTAPIResponse: setStatus, setBody
//   GlideRecord over the tables given in the input: addQuery(field, value) and
//     addQuery(field, "CONTAINS", value), setLimit, query, next, hasNext, getUniqueValue, update
//     (recorded), fields read and assigned as properties
//   GlideCertificateEncryption.generateMac(base64Key, "HmacSHA256", data), gs.getProperty,
//   GlideDateTime.getNumericValue (input "now" in ms, else the clock)
//
// usage: node servicenow-rest-harness.js SCRIPT.js < {"properties": {...}, "headers": {...},
//          "body": "...", "query": {"incident": ["INC…"]}, "tables": {"incident": [{...}], ...}, "now": ms}
// prints {"status": n, "body": {...}, "updates": [{"table", "sys_id", "fields"}]}
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const vm = require("node:vm");

const input = JSON.parse(fs.readFileSync(0, "utf8"));
const source = fs.readFileSync(process.argv[2], "utf8");
const tables = input.tables || {};
const updates = [];

function GlideRecord(table) {
  const rows = tables[table] || [];
  const conds = [];
  let limit = Infinity, found = [], pos = -1, current = null;
  const self = this;
  this.addQuery = (field, op, value) => {
    if (value === undefined) { value = op; op = "="; }
    conds.push({ field, op, value: String(value) });
  };
  this.setLimit = (n) => { limit = n; };
  this.query = () => {
    found = rows.filter((r) => conds.every((c) => c.op === "CONTAINS"
      ? String(r[c.field] ?? "").includes(c.value)
      : String(r[c.field] ?? "") === c.value)).slice(0, limit);
    pos = -1;
  };
  this.hasNext = () => pos + 1 < found.length;
  this.next = () => {
    if (pos + 1 >= found.length) return false;
    current = found[++pos];
    for (const [k, v] of Object.entries(current)) self[k] = v;
    return true;
  };
  this.getUniqueValue = () => current && current.sys_id;
  this.update = () => {
    const fields = {};
    for (const k of Object.keys(self)) {
      if (typeof self[k] !== "function" && (!(k in current) || current[k] !== self[k])) fields[k] = self[k];
    }
    updates.push({ table, sys_id: current.sys_id, fields });
    return current.sys_id;
  };
}

const headers = {};
for (const [k, v] of Object.entries(input.headers || {})) headers[k.toLowerCase()] = v;
const out = { status: 0, body: null };
const context = {
  JSON, Math, String, Error, Number, Object, Array, RegExp, parseInt, isNaN,
  request: {
    getHeader: (name) => (name.toLowerCase() in headers ? headers[name.toLowerCase()] : null),
    body: { dataString: input.body },
    queryParams: input.query || {},
  },
  response: { setStatus: (s) => { out.status = s; }, setBody: (b) => { out.body = b; } },
  GlideRecord,
  GlideCertificateEncryption: function () {
    this.generateMac = (key, algorithm, data) => {
      if (algorithm !== "HmacSHA256") throw new Error("harness: unexpected algorithm " + algorithm);
      return crypto.createHmac("sha256", Buffer.from(key, "base64")).update(Buffer.from(String(data), "utf8")).digest("base64");
    };
  },
  GlideDateTime: function () {
    this.getNumericValue = () => (input.now === undefined ? Date.now() : input.now);
  },
  gs: { getProperty: (name) => (name in (input.properties || {}) ? input.properties[name] : null) },
};
vm.createContext(context);
vm.runInContext(source, context, { filename: process.argv[2] });
process.stdout.write(JSON.stringify({ status: out.status, body: out.body, updates }) + "\n");
