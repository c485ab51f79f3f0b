"""Write a random RoFormer-Sim model for benchmarks (never committed).

The released base architecture (12 layers, hidden 768, 12 heads, FFN 3072,
vocabulary 12000) with random weights, as a Hugging Face directory:
config.json, vocab.txt (the released vocabulary) and model.safetensors with
roformer.* names, so the loader path is the one users take.

usage: python3 bench/make_random_model.py OUT_DIR [--layers 12 --hidden 768 --heads 12]
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np

p = argparse.ArgumentParser()
p.add_argument('out')
p.add_argument('--layers', type=int, default=12)
p.add_argument('--hidden', type=int, default=768)
p.add_argument('--heads', type=int, default=12)
p.add_argument('--vocab', default=os.path.join(os.path.dirname(__file__), '..', 'tests',
                                               'fixtures', 'roformer-sim-char', 'vocab.txt'))
a = p.parse_args()
H, L, F = a.hidden, a.layers, 4 * a.hidden
V = sum(1 for _ in open(a.vocab, encoding='utf-8'))
rng = np.random.default_rng(0)


def rand(*shape, scale=0.02):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


t = {}
e = 'roformer.embeddings.'
t[e + 'word_embeddings.weight'] = rand(V, H)
t[e + 'token_type_embeddings.weight'] = rand(2, H)
t[e + 'LayerNorm.weight'] = np.ones(H, np.float32)
t[e + 'LayerNorm.bias'] = np.zeros(H, np.float32)
for i in range(L):
    b = 'roformer.encoder.layer.%d.' % i
    for n in ('query', 'key', 'value'):
        t[b + 'attention.self.%s.weight' % n] = rand(H, H)
        t[b + 'attention.self.%s.bias' % n] = rand(H)
    t[b + 'attention.output.dense.weight'] = rand(H, H)
    t[b + 'attention.output.dense.bias'] = rand(H)
    t[b + 'intermediate.dense.weight'] = rand(F, H)
    t[b + 'intermediate.dense.bias'] = rand(F)
    t[b + 'output.dense.weight'] = rand(H, F)
    t[b + 'output.dense.bias'] = rand(H)
    for n in ('attention.output.LayerNorm', 'output.LayerNorm'):
        t[b + n + '.weight'] = np.ones(H, np.float32)
        t[b + n + '.bias'] = np.zeros(H, np.float32)
t['roformer.pooler.dense.weight'] = rand(H, H)
t['roformer.pooler.dense.bias'] = rand(H)
t['cls.predictions.transform.dense.weight'] = rand(H, H)
t['cls.predictions.transform.dense.bias'] = rand(H)
t['cls.predictions.transform.LayerNorm.weight'] = np.ones(H, np.float32)
t['cls.predictions.transform.LayerNorm.bias'] = np.zeros(H, np.float32)
t['cls.predictions.bias'] = rand(V)

os.makedirs(a.out, exist_ok=True)
header, off = {}, 0
for name, arr in t.items():
    header[name] = {'dtype': 'F32', 'shape': list(arr.shape), 'data_offsets': [off, off + arr.nbytes]}
    off += arr.nbytes
h = json.dumps(header).encode()
h += b' ' * (-len(h) % 8)
with open(os.path.join(a.out, 'model.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(h)))
    f.write(h)
    for arr in t.values():
        f.write(arr.tobytes())
json.dump({'model_type': 'roformer', 'vocab_size': V, 'hidden_size': H, 'num_hidden_layers': L,
           'num_attention_heads': a.heads, 'intermediate_size': F, 'hidden_act': 'gelu',
           'max_position_embeddings': 512, 'type_vocab_size': 2, 'layer_norm_eps': 1e-12},
          open(os.path.join(a.out, 'config.json'), 'w'), indent=1)
shutil.copy(a.vocab, os.path.join(a.out, 'vocab.txt'))
print('wrote', a.out, sum(x.size for x in t.values()), 'parameters')
