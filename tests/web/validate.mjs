// validate.mjs: checks docs/openapi.json with an OpenAPI 3.1 validator, then
// every reply the C test suites received (the ROSIM_API_LOG file written by
// tests/testutil.c) against it, and reports which operations were exercised.
//
//   node tests/web/validate.mjs docs/openapi.json build/api-responses.log
//
// For each exchange: the path is matched to a documented path template; the
// method (HEAD as GET) must be documented there, or the reply must be the
// 405 (or another error documented on that path); the status must be
// documented for the operation; the Content-Type must be the documented one;
// the headers the document marks required must be there; the body must
// conform to its schema (JSON Schema 2020-12, OpenAPI 3.1's
// dialect, with ajv).  A path no template matches may only get an error in
// the API's error shape.  Exits 1 on any non-conforming reply or any
// documented operation that no test exercised.
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import Ajv2020 from 'ajv/dist/2020.js';

const [docPath, logPath] = process.argv.slice(2);
if (!docPath || !logPath) {
  console.error('usage: validate.mjs OPENAPI.json LOG');
  process.exit(2);
}
const doc = JSON.parse(readFileSync(docPath, 'utf8'));

// --- the document itself ----------------------------------------------------
const checked = await new Validator().validate(structuredClone(doc));
if (!checked.valid) {
  console.error(docPath + ': not a valid OpenAPI 3.1 document:');
  console.error(JSON.stringify(checked.errors, null, 2));
  process.exit(1);
}

// --- the log -----------------------------------------------------------------
// "method\tstatus\tpathlen\theaderlen\tbodylen\n" path headers body "\n"; the
// header block is the reply's, status line included (the last one counts).
function headersOf(block) {
  const h = {};
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith('HTTP/')) for (const k of Object.keys(h)) delete h[k];
    const colon = line.indexOf(':');
    if (colon > 0) h[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return h;
}
function* entries(buf) {
  let at = 0;
  while (at < buf.length) {
    const nl = buf.indexOf(10, at);
    const [method, status, pl, tl, bl] = buf.subarray(at, nl).toString('latin1').split('\t');
    let p = nl + 1;
    const path = buf.subarray(p, (p += Number(pl))).toString('latin1');
    const headers = headersOf(buf.subarray(p, (p += Number(tl))).toString('latin1'));
    const body = buf.subarray(p, (p += Number(bl)));
    if (buf[p] !== 10 || Number.isNaN(Number(status))) throw new Error(logPath + ': malformed at byte ' + at);
    at = p + 1;
    yield { method, status: Number(status), path, headers, type: headers['content-type'] ?? '', body };
  }
}

// --- matching ----------------------------------------------------------------
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'trace'];
const templates = Object.keys(doc.paths).map((t) => ({
  t,
  literal: !t.includes('{'),
  re: new RegExp('^' + t.replace(/[.]/g, '\\.').replace(/\{[^}]+\}/g, '[^/]+') + '$'),
}));
templates.sort((a, b) => b.literal - a.literal);

function templateOf(rawPath) {
  let p = rawPath.split('?')[0];
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);   // the router ignores one
  const m = templates.find((x) => x.re.test(p));
  return m ? m.t : null;
}

const deref = (o) => {
  while (o && o.$ref) o = o.$ref.split('/').slice(1).reduce((x, k) => x[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  return o;
};
const pointer = (parts) => '#/' + parts.map((k) => String(k).replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema(doc, 'openapi.json');
const compiled = new Map();
function schemaCheck(ptr) {
  if (!compiled.has(ptr)) compiled.set(ptr, ajv.compile({ $ref: 'openapi.json' + ptr }));
  return compiled.get(ptr);
}

// The response object for status in operation op (exact code, then "4XX"),
// with the pointer to it, or null.
function responseOf(tmpl, method, status) {
  const op = doc.paths[tmpl][method];
  if (!op) return null;
  for (const key of [String(status), String(status)[0] + 'XX', 'default']) {
    if (op.responses[key]) {
      let ptr = ['paths', tmpl, method, 'responses', key];
      let r = op.responses[key];
      if (r.$ref) {
        ptr = r.$ref.split('/').slice(1);
        r = deref(r);
      }
      return { r, ptr };
    }
  }
  return null;
}

const baseType = (t) => t.split(';')[0].trim().toLowerCase();

// Problems with one exchange (an empty list when it conforms).
function check(e, tmpl, method) {
  const found = responseOf(tmpl, method, e.status);
  if (!found) return ['status ' + e.status + ' is not documented for ' + method.toUpperCase() + ' ' + tmpl];
  const { r, ptr } = found;
  const noBody = e.method === 'HEAD';
  const missing = Object.entries(r.headers ?? {}).filter(([name, h]) => deref(h).required &&
                                                         e.headers[name.toLowerCase()] === undefined);
  if (missing.length > 0) return missing.map(([name]) => 'no ' + name + ' header');
  if (!r.content) {
    return e.body.length === 0 ? [] : ['a ' + e.status + ' reply must have no body'];
  }
  const types = Object.keys(r.content);
  const type = types.find((t) => t.toLowerCase() === e.type.toLowerCase()) ??
               types.find((t) => baseType(t) === baseType(e.type) && !t.includes(';'));
  if (type === undefined) return ['Content-Type "' + e.type + '" is not the documented ' + types.join(' or ')];
  if (noBody) return [];
  let value;
  if (baseType(type) === 'application/json') {
    try {
      value = JSON.parse(e.body.toString('utf8'));
    } catch (err) {
      return ['the body is not JSON: ' + err.message];
    }
  } else {
    value = e.body.toString('utf8');
  }
  const validate = schemaCheck(pointer([...ptr, 'content', type, 'schema']));
  if (validate(value)) return [];
  return validate.errors.map((x) => 'body' + x.instancePath + ' ' + x.message +
                                    (x.params && Object.keys(x.params).length ? ' ' + JSON.stringify(x.params) : ''));
}

// Replies the HTTP layer gives before a request is routed (bad framing, no
// key, a body over max_body_bytes), on any path and method; the document
// says so in info.description.
const BEFORE_ROUTING = [400, 401, 413];
function errorShape(e) {
  if (e.method === 'HEAD') return [];
  let v;
  try {
    v = JSON.parse(e.body.toString('utf8'));
  } catch (err) {
    return ['the body is not JSON: ' + err.message];
  }
  return schemaCheck('#/components/schemas/Error')(v) ? [] : ['not the error shape'];
}

const seen = new Map();      // "METHOD template" -> Set of statuses
let total = 0, unrouted = 0, notAllowed = 0;
const failures = [];
for (const e of entries(readFileSync(logPath))) {
  total++;
  const tmpl = templateOf(e.path);
  const method = e.method === 'HEAD' ? 'get' : e.method.toLowerCase();
  let problems;
  if (tmpl === null) {
    unrouted++;
    problems = [...BEFORE_ROUTING, 404, 414].includes(e.status) ? errorShape(e)
      : ['status ' + e.status + ' for a path no route matches'];
  } else if (!doc.paths[tmpl][method]) {
    notAllowed++;
    // an undocumented method: 405, or an error that comes before the method
    // is looked at (a bad name, no key), as documented on some operation
    const ops = METHODS.filter((m) => doc.paths[tmpl][m]);
    const owner = ops.find((m) => responseOf(tmpl, m, e.status));
    if (owner === undefined) {
      problems = BEFORE_ROUTING.includes(e.status) ? errorShape(e)
        : [e.method + ' is not documented on ' + tmpl + ' and got ' + e.status];
    } else {
      problems = check(e, tmpl, owner);
    }
    if (e.status === 405) {   // the 405 each operation of the path documents
      for (const m of ops) {
        const key = m.toUpperCase() + ' ' + tmpl;
        if (!seen.has(key)) seen.set(key, new Set());
        seen.get(key).add(405);
      }
    }
  } else {
    const key = method.toUpperCase() + ' ' + tmpl;
    if (!seen.has(key)) seen.set(key, new Set());
    seen.get(key).add(e.status);
    problems = check(e, tmpl, method);
  }
  if (problems.length > 0) {
    failures.push(e.method + ' ' + e.path.slice(0, 120) + ' -> ' + e.status + ' ' + e.type + ':\n    ' +
                  problems.slice(0, 5).join('\n    ') + '\n    body: ' + e.body.toString('utf8').slice(0, 300));
  }
}

// --- coverage ------------------------------------------------------------------
const unexercised = [];
let documented = 0, covered = 0;
console.log('openapi: operation                                   statuses seen (documented but not seen)');
for (const [tmpl, item] of Object.entries(doc.paths)) {
  for (const m of METHODS.filter((x) => item[x])) {
    const key = m.toUpperCase() + ' ' + tmpl;
    const got = seen.get(key) ?? new Set();
    const codes = Object.keys(item[m].responses);
    documented += codes.length;
    const missing = codes.filter((c) => !got.has(Number(c)));
    covered += codes.length - missing.length;
    if (got.size === 0) unexercised.push(key);
    console.log('  ' + key.padEnd(50) + [...got].sort().join(',') + (missing.length ? '  (' + missing.join(',') + ')' : ''));
  }
}
console.log('openapi: ' + total + ' replies checked (' + unrouted + ' to unrouted paths, ' + notAllowed +
            ' to undocumented methods); ' + seen.size + ' operations exercised; documented statuses seen: ' +
            covered + ' of ' + documented);
for (const f of failures) console.error('openapi: does not conform: ' + f);
for (const u of unexercised) console.error('openapi: never exercised: ' + u);
if (failures.length > 0 || unexercised.length > 0) {
  console.error('openapi: ' + failures.length + ' non-conforming replies, ' + unexercised.length + ' operations never exercised');
  console.error('openapi: ' + (total - failures.length) + ' passed, ' + failures.length + ' failed');
  process.exit(1);
}
console.log('openapi: every reply conforms to ' + docPath);
console.log('openapi: ' + total + ' passed, 0 failed');
