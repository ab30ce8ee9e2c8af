#!/usr/bin/env python3
"""Write squeezellm_tiny.pt: a SqueezeLLM-style `torch.save(state_dict)` file, produced by
CPython's own pickler (protocol 2, as torch.save uses) with stand-ins for torch's classes, so no
torch is needed. The layout is torch's zip format: archive/data.pkl, archive/data/<key>,
archive/version, archive/byteorder, entries stored uncompressed. Values follow closed formulas
that tests/hf_lut_spqr_aqlm_bnb.rs recomputes. Run from this folder: python3 make_squeezellm_pt.py
"""
import collections
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
torch._utils = utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("stand-in")


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
for name in ["FloatStorage", "IntStorage"]:
    cls = type(name, (), {})
    cls.__module__ = "torch"
    setattr(torch, name, cls)


class Storage:
    def __init__(self, key, typ, fmt, values):
        self.key, self.typ, self.values = key, typ, values
        self.data = struct.pack("<%d%s" % (len(values), fmt), *values)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def __reduce_ex__(self, proto):
        s, off, size, stride = self.args
        return (_rebuild_tensor_v2, (s, off, tuple(size), tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.typ, obj.key, "cpu", len(obj.values))
        return None


N, K, BITS = 37, 64, 4
WPR = K * BITS // 32
P = "model.layers.0.mlp.down_proj"


def i32(v):
    v %= 1 << 32
    return v - (1 << 32) if v >= 1 << 31 else v


qweight = [i32((w * N + n) * 2654435761 + 12345) for w in range(WPR) for n in range(N)]
# lookup_table[n, e] lives transposed in its storage: element (n, e) at e*N + n.
lut_t = [((n * 16 + e) % 29 - 14) * 0.125 + n * 0.001 for e in range(16) for n in range(N)]
rows, cols, vals = [0], [], []
for n in range(N):
    cnt = n % 3
    cs = sorted((n * 7 + t * 21) % K for t in range(cnt))
    for t, c in enumerate(cs):
        cols.append(c)
        vals.append((n - 18) * 0.5 + t * 0.25 + 0.0625)
    rows.append(len(cols))

st = [
    Storage("0", torch.IntStorage, "i", qweight),
    Storage("1", torch.FloatStorage, "f", lut_t),
    Storage("2", torch.IntStorage, "i", rows),
    Storage("3", torch.IntStorage, "i", cols),
    Storage("4", torch.FloatStorage, "f", [999.0] * 5 + vals),
]
sd = collections.OrderedDict()
sd[P + ".qweight"] = Tensor(st[0], 0, (WPR, N), (N, 1))
sd[P + ".lookup_table"] = Tensor(st[1], 0, (N, 16), (1, N))
sd[P + ".rows"] = Tensor(st[2], 0, (N + 1,), (1,))
sd[P + ".cols"] = Tensor(st[3], 0, (len(cols),), (1,))
sd[P + ".vals"] = Tensor(st[4], 5, (len(vals),), (1,))
sd["sparse_threshold." + P] = len(vals)
sd._metadata = collections.OrderedDict([("", {"version": 1})])

import io

buf = io.BytesIO()
Pickler(buf, protocol=2).dump(sd)
with zipfile.ZipFile("squeezellm_tiny.pt", "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", buf.getvalue())
    z.writestr("archive/byteorder", "little")
    for s in st:
        z.writestr("archive/data/" + s.key, s.data)
    z.writestr("archive/version", "3\n")
print("wrote squeezellm_tiny.pt")
