"""Write two hostile PyTorch zip files under tests/fixtures/torch-hostile/,
each a stored zip with a hand-written protocol-2 data.pkl:

  overflow.bin  a tensor at storage offset 2^63 - 2 with 3 elements of
                stride 1: the last element's index overflows int64;
  fanout.bin    17 nested dicts, each naming the one below 16 times through
                the memo: a 2 kB file whose walk would visit 16^16 objects.

    python3 tests/tools/make_torch_hostile.py
"""
import struct
import zipfile


def text(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def write(path, pkl, storage=b""):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/data/0", storage)
        z.writestr("archive/version", b"3\n")


tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n("
          + b"(" + text("storage") + b"ctorch\nFloatStorage\n" + text("0") + text("cpu")
          + b"K\x04tQ"                                         # storage of 4 floats
          + b"\x8a\x08" + struct.pack("<q", 2**63 - 2)         # offset
          + b"K\x03\x85" + b"K\x01\x85"                        # shape (3,), stride (1,)
          + b"tR")
write("tests/fixtures/torch-hostile/overflow.bin",
      b"\x80\x02}(" + text("w") + tensor + b"u.", b"\0" * 16)

pkl = b"\x80\x02}q\x00"                                       # memo 0: {}
for level in range(1, 17):
    pkl += b"}("
    for k in range(16):
        pkl += text("k%d" % k) + b"h" + bytes([level - 1])
    pkl += b"uq" + bytes([level])
write("tests/fixtures/torch-hostile/fanout.bin", pkl + b".")
