"""Golden cases for tok_decode, from the independent Python reference.

Writes tests/fixtures/tokenizer/golden-decode.jsonl: {"ids": [...], "text": "..."}
per line, decoded by roformer_ref.Tokenizer.decode (bert4keras rules) over the
released vocabulary: the ids of the golden tokenizations, and random id
sequences that mix CJK, word pieces, punctuation, digits and special tokens.
Usage: /usr/bin/python3 tests/tools/make_decode_golden.py PATH/TO/roformer_ref.py-dir
"""
import json
import random
import sys

sys.path.insert(0, sys.argv[1])
import roformer_ref  # noqa: E402

vocab = [l.rstrip('\n') for l in open('tests/fixtures/roformer-sim-char/vocab.txt', encoding='utf-8')]
tok = roformer_ref.Tokenizer(vocab)
rng = random.Random(20261129)
cases = []
for path in ('tests/fixtures/tokenizer/golden-fortunes.jsonl', 'tests/fixtures/tokenizer/golden-fuzz.jsonl'):
    for i, line in enumerate(open(path, encoding='utf-8')):
        if i % 4 == 0:
            cases.append(json.loads(line)['ids'])
interesting = [i for i, t in enumerate(vocab) if t.startswith('##') or len(t) == 1 or t.startswith('[')]
for _ in range(1000):
    n = rng.randint(0, 24)
    pool = interesting if rng.random() < 0.6 else range(len(vocab))
    cases.append([rng.choice(pool) for _ in range(n)])
with open('tests/fixtures/tokenizer/golden-decode.jsonl', 'w', encoding='utf-8') as f:
    for ids in cases:
        f.write(json.dumps({'ids': ids, 'text': tok.decode(ids)}, ensure_ascii=False) + '\n')
print(len(cases), 'cases')
