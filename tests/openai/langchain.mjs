// langchain.mjs: rosimd through LangChain's OpenAIEmbeddings, as a RAG
// application points it at an OpenAI-compatible server (baseURL), with
// LangChain's default retries.  Counts the HTTP requests it makes.  Prints
// one JSON line: {"documents": [[...], ...], "documentRequests": n,
//   "query": [...], "refused": {"status", "param", "message", "ms", "requests"}}.
//   usage: node langchain.mjs PORT BATCH_SIZE TEXT...
import { OpenAIEmbeddings } from '@langchain/openai';

const [port, batchSize, ...texts] = process.argv.slice(2);
let requests = 0;
const configuration = {
  baseURL: `http://127.0.0.1:${port}/v1`,
  fetch: (url, init) => { requests += 1; return fetch(url, init); },
};
const embeddings = (more) => new OpenAIEmbeddings({
  model: 'roformer-sim', apiKey: 'unused', batchSize: Number(batchSize), configuration, ...more,
});

const documents = await embeddings().embedDocuments(texts);
const documentRequests = requests;
const query = await embeddings().embedQuery(texts[0]);

// a parameter rosimd refuses must fail at once, not after LangChain's retries
let refused = null;
requests = 0;
const t0 = performance.now();
try {
  await embeddings({ dimensions: 32 }).embedQuery(texts[0]);
} catch (e) {
  refused = { status: e.status ?? null, param: e.error?.param ?? e.param ?? null,
              message: e.message, ms: performance.now() - t0, requests };
}

console.log(JSON.stringify({ documents, documentRequests, query, refused }));
