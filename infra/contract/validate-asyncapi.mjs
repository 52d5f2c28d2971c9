// Validates docs/asyncapi.json with the AsyncAPI initiative's own parser (its schema and rules):
// any error fails, warnings are printed. Run by infra/check-contract.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const path = process.argv[2] ?? "../../docs/asyncapi.json";
const parser = new Parser();
const { document, diagnostics } = await parser.parse(await readFile(path, "utf8"));
let errors = 0;
for (const diagnostic of diagnostics) {
  const where = diagnostic.path.join(".") || "(document)";
  const level = diagnostic.severity === DiagnosticSeverity.Error ? "error" : "warning";
  if (level === "error") errors += 1;
  console.log(`${level}: ${where}: ${diagnostic.message} [${diagnostic.code}]`);
}
if (errors > 0 || document === undefined) {
  console.error(`${path}: ${errors} error(s)`);
  process.exit(1);
}
const messages = document.allMessages().length;
const operations = document.allOperations().length;
console.log(`${path}: valid AsyncAPI ${document.version()} (${operations} operations, ${messages} messages)`);
