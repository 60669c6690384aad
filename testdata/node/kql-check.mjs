// kql-check.mjs checks KQL queries with Kusto's own language service (@kusto/language-service-next,
// the parser and semantic analyser behind Azure Data Explorer's and Azure Monitor's editors), so a
// Go test can prove that every query in the repository parses and binds against the tables it uses.
//
// stdin: {"tables": {"customEvents": "(timestamp:datetime, name:string, …)", …},
//         "queries": [{"id": "…", "text": "…"}, …]}
// stdout: [{"id", "diagnostics": [{"severity", "code", "message", "start", "length"}],
//           "reads": [{"bag": "customDimensions", "key": "status"}, …], "strings": ["…", …]}, …]
//
//   node kql-check.mjs < request.json
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
// A Bridge.NET build: bridge.js defines the runtime as a global, the library then adds Kusto.
require("@kusto/language-service-next/bridge.js");
require("@kusto/language-service-next/Kusto.Language.Bridge.js");
const K = globalThis.Kusto.Language;

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const tables = Object.entries(req.tables).map(([name, schema]) =>
  K.Symbols.TableSymbol.From(schema).WithName(name));
const db = new K.Symbols.DatabaseSymbol.ctor("appinsights", tables);
const cluster = new K.Symbols.ClusterSymbol.ctor("appinsights", [db]);
const globals = K.GlobalState.Default.WithCluster(cluster).WithDatabase(db);

const bags = new Set(["customDimensions", "customMeasurements"]);
const text = (node) => (node ? String(node.ToString(K.Syntax.IncludeTrivia.Minimal)).trim() : "");

// unquote reads a KQL string literal's value ('x', "x", @'x', ['x']).
const unquote = (s) => {
  s = s.replace(/^\[|\]$/g, "").replace(/^[@hH]/, "");
  if (s.length >= 2 && (s[0] === "'" || s[0] === '"') && s.at(-1) === s[0]) {
    return K.KustoFacts.GetStringLiteralValue(s);
  }
  return null;
};

const out = req.queries.map(({ id, text: query }) => {
  const code = K.KustoCode.ParseAndAnalyze(query, globals);
  const diags = code.GetDiagnostics();
  const diagnostics = [];
  for (let i = 0; i < diags.Count; i++) {
    const d = diags.getItem(i);
    diagnostics.push({ severity: String(d.Severity), code: d.Code, message: d.Message, start: d.Start, length: d.Length });
  }
  const reads = [];
  const strings = [];
  K.Syntax.SyntaxElement.WalkNodes(code.Syntax, (node) => {
    const kind = String(K.Syntax.SyntaxKind.$names?.[node.Kind] ?? node.Kind);
    const typeName = node.constructor?.$$name ?? "";
    if (typeName.endsWith(".LiteralExpression")) {
      const v = unquote(text(node));
      if (v !== null) strings.push(v);
    }
    // customDimensions.key, customDimensions["key"], customDimensions['key']
    if (typeName.endsWith(".PathExpression") || typeName.endsWith(".ElementExpression")) {
      const bag = text(node.Expression);
      if (!bags.has(bag)) return;
      let key = text(node.Selector);
      const quoted = unquote(key);
      if (quoted !== null) key = quoted;
      else key = key.replace(/^\[|\]$/g, "");
      reads.push({ bag, key, kind });
    }
  });
  return { id, diagnostics, reads, strings };
});
process.stdout.write(JSON.stringify(out));
