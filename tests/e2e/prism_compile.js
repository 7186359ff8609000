// prism_compile.js - compiles every schema of an OpenAPI document the way
// Prism's validator does (@stoplight/prism-http: the operations as Prism
// reads them, one Ajv per JSON Schema draft, the operation's __bundled__
// references). Prism wraps that compilation in a try and, when it throws,
// validates nothing at all for that body or header: a schema it cannot
// compile would let every request and answer through unchecked. This
// prints one line per schema that does not compile and exits 1 if any.
//   node prism_compile.js NODE_MODULES_DIR OPENAPI_FILE
'use strict';
const path = require('path');
const mods = process.argv[2];
const need = m => require(path.join(mods, m));
const { getHttpOperationsFromSpec } = need('@stoplight/prism-http');
const Ajv = need('ajv').default;
const Ajv2019 = need('ajv/dist/2019').default;
const Ajv2020 = need('ajv/dist/2020').default;
const addFormats = need('ajv-formats').default;

const opts = { allErrors: true, allowUnionTypes: true, allowMatchingProperties: true, strict: false,
               logger: false, coerceTypes: false };
const ajvs = {};
function ajvFor(schema) {
  const s = String(schema.$schema);
  const key = /2019-09/.test(s) ? '2019' : /2020-12/.test(s) ? '2020' : 'default';
  if (!ajvs[key]) {
    ajvs[key] = new ({ default: Ajv, 2019: Ajv2019, 2020: Ajv2020 }[key])(opts);
    addFormats(ajvs[key]);
  }
  return ajvs[key];
}

(async () => {
  const ops = await getHttpOperationsFromSpec(process.argv[3]);
  let n = 0, bad = 0;
  const check = (where, schema, bundle) => {
    if (!schema) return;
    n++;
    try {
      ajvFor(schema).compile({ ...schema, __bundled__: bundle });
    } catch (e) {
      bad++;
      console.log(`${where}: ${e.message}`);
    }
  };
  for (const op of ops) {
    const at = `${op.method.toUpperCase()} ${op.path}`;
    const b = op.__bundled__;
    for (const c of (op.request && op.request.body && op.request.body.contents) || [])
      check(`${at} request ${c.mediaType}`, c.schema, b);
    for (const p of ['headers', 'query', 'path'])
      for (const h of (op.request && op.request[p]) || []) check(`${at} ${p} ${h.name}`, h.schema, b);
    for (const r of op.responses || []) {
      for (const c of r.contents || []) check(`${at} ${r.code} ${c.mediaType}`, c.schema, b);
      for (const h of r.headers || []) check(`${at} ${r.code} header ${h.name}`, h.schema, b);
    }
  }
  console.log(`compiled ${n - bad} of ${n} schemas`);
  process.exit(bad ? 1 : 0);
})().catch(e => { console.log(String(e && e.stack || e)); process.exit(2); });
