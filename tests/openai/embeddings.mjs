// embeddings.mjs: ask rosimd for embeddings through the official OpenAI
// client, as users will: once with the client's default (base64, decoded by
// the library) and once with encoding_format "float".  Prints one JSON line:
// {"default": [[...], ...], "float": [[...], ...], "usage": {...}}.
//   usage: node embeddings.mjs PORT TEXT...
import OpenAI from 'openai';

const [port, ...texts] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });

const byDefault = await client.embeddings.create({ model: 'roformer-sim', input: texts });
const asFloat = await client.embeddings.create({ model: 'roformer-sim', input: texts, encoding_format: 'float' });
const one = await client.embeddings.create({ model: 'roformer-sim', input: texts[0] });

console.log(JSON.stringify({
  default: byDefault.data.map((d) => Array.from(d.embedding)),
  float: asFloat.data.map((d) => d.embedding),
  single: one.data[0].embedding,
  usage: byDefault.usage,
  model: byDefault.model,
}));
