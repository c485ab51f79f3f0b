"""Write tests/fixtures/torch-protocol4/pytorch_model.bin: a small state dict
saved by torch.save with pickle protocol 4 (MEMOIZE, FRAME, STACK_GLOBAL),
with a tensor reached twice through the memo, a transposed view of the same
storage, float16, int64 and a nested dict.  Run with Debian's python3-torch:

    /usr/bin/python3 tests/tools/make_torch_protocol4.py
"""
import collections

import torch

a = torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4
sd = collections.OrderedDict()
sd["w"] = a
sd["w_t"] = a.t()          # same storage, strides (1, 3)
sd["tied"] = a             # the same object again: a memo reference
sd["h"] = torch.tensor([1.5, -2.25, 65504.0], dtype=torch.float16)
sd["sub"] = collections.OrderedDict(step=torch.tensor([7, -3], dtype=torch.int64))
torch.save(sd, "tests/fixtures/torch-protocol4/pytorch_model.bin", pickle_protocol=4)
