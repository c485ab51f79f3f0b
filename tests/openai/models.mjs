// models.mjs: the official OpenAI client's model listing, and requests
// rosimd refuses, which the client must report as such without retrying
// (its default is 2 retries on 408, 409, 429 and 5xx).  Prints one JSON line:
// {"list": [...], "retrieved": {...}, "missing": {...}, "dimensions": {...},
//  "tokens": {...}} where each refusal is {"class","status","type","param","requests"}.
//   usage: node models.mjs PORT
import OpenAI from 'openai';

const [port] = process.argv.slice(2);
let requests = 0;
const client = new OpenAI({
  baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused',
  fetch: (url, init) => { requests += 1; return fetch(url, init); },
});

async function refusal(call) {
  requests = 0;
  try {
    await call();
  } catch (e) {
    return { class: e.constructor.name, status: e.status ?? null, type: e.type ?? null,
             param: e.param ?? null, code: e.code ?? null, requests };
  }
  return null;
}

const list = [];
for await (const model of client.models.list())
  list.push(model);
const retrieved = await client.models.retrieve(list[0].id);
const missing = await refusal(() => client.models.retrieve('no-such-model'));
const dimensions = await refusal(() => client.embeddings.create({
  model: list[0].id, input: ['我喜欢北京'], dimensions: 32 }));
const tokens = await refusal(() => client.embeddings.create({
  model: list[0].id, input: [[101, 2769, 102]] }));

console.log(JSON.stringify({ list, retrieved, missing, dimensions, tokens }));
