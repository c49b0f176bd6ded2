// Parse an AsyncAPI document with AsyncAPI's own parser (@asyncapi/parser: the JSON Schema of the
// spec version, then its Spectral rules) and print every diagnostic as one JSON line:
// {"severity": "error"|"warning"|"info"|"hint", "code", "message", "path"}. Exit 1 when any is an error.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Parser, fromFile } from "@asyncapi/parser";

const SEVERITY = ["error", "warning", "info", "hint"];
const path = resolve(process.argv[2]);
const parser = new Parser();
readFileSync(path); // a missing file is an error of its own, not a diagnostic
const { document, diagnostics } = await fromFile(parser, path).parse();
let errors = 0;
for (const diagnostic of diagnostics) {
  const severity = SEVERITY[diagnostic.severity] ?? String(diagnostic.severity);
  if (severity === "error") errors += 1;
  console.log(
    JSON.stringify({ severity, code: diagnostic.code, message: diagnostic.message, path: diagnostic.path.join(".") }),
  );
}
if (document === undefined && errors === 0) errors = 1;
process.exit(errors ? 1 : 0);
