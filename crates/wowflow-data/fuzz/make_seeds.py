"""Writes small valid seed inputs for every fuzz target into corpus/<target>/.

Needs Python 3 with numpy and h5py (`pip install numpy h5py`). Seeds are generated, not
committed: `python3 make_seeds.py` before `cargo fuzz run`.
"""
import bz2, gzip, io, os, struct, zlib
import numpy as np

def put(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def npy(a):
    b = io.BytesIO(); np.save(b, a); return b.getvalue()

put("npy", "f32", npy(np.arange(6, dtype=np.float32).reshape(2, 3)))
put("npy", "f64_fortran", npy(np.asfortranarray(np.arange(6.0).reshape(2, 3))))
put("npy", "be_i4", npy(np.arange(4, dtype=">i4")))
put("npy", "u1", npy(np.arange(3, dtype=np.uint8)))
for compressed in (False, True):
    b = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(b, x=np.ones((3, 2), np.float32), y=np.array([0, 1, 0]))
    put("npz", "c" if compressed else "s", b.getvalue())
put("csv", "header", b"label,a,b\n1,0.5,2\n0,1e-3,-4\n")
put("csv", "plain", b"3,1\n2,2\n# c\n\n1,\"4\"\n")

def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)
put("idx", "images_raw", idx([2, 2, 2], range(8)))
put("idx", "labels_gz", gzip.compress(idx([3], [0, 1, 9])))
put("idx", "images_bz2", bz2.compress(idx([1, 3, 3], range(9))))

line = "3 " + " ".join(f"{k}:{(k % 7) / 3 - 1:.6f}" for k in range(1, 257)) + "\n"
put("usps_libsvm", "two.bz2", bz2.compress((line + "10 5:0.5\n").encode()))
put("usps_libsvm", "plain", (line).encode())

import h5py
b = io.BytesIO()
with h5py.File(b, "w") as f:
    for split, n in (("train", 3), ("test", 2)):
        g = f.create_group(split)
        g.create_dataset("data", data=np.random.RandomState(0).rand(n, 256).astype(np.float32), compression="gzip", chunks=(n, 64))
        g.create_dataset("target", data=np.arange(n, dtype=np.int32), compression="gzip")
put("usps_h5", "small.h5", b.getvalue())

rec = lambda l, i: bytes([l]) + bytes((k // 1024 * 100 + i) % 256 for k in range(3072))
batch = rec(3, 0) + rec(9, 1)
put("cifar", "batch", batch)
def tar(members):
    import tarfile
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    return b.getvalue()
put("cifar", "tar", tar([("cifar-10-batches-bin/test_batch.bin", batch)]))

def el(ty, data):
    out = struct.pack("<II", ty, len(data)) + data
    return out + b"\0" * (-len(out) % 8)
def matrix(name, dims, cls, ty, raw):
    body = el(6, struct.pack("<II", cls, 0)) + el(5, b"".join(struct.pack("<i", d) for d in dims))
    body += el(1, name.encode()) + el(ty, raw)
    return el(14, body)
header = b"MATLAB 5.0 MAT-file, Platform: fuzz seeds".ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
n = 2
x = bytes((h + 2 * w + 64 * c + i) % 256 for i in range(n) for c in range(3) for w in range(32) for h in range(32))
xm = matrix("X", [32, 32, 3, n], 9, 2, x)
ym = matrix("y", [n, 1], 6, 9, struct.pack("<2d", 10.0, 3.0))
put("svhn_mat", "plain", header + xm + ym)
z = zlib.compress(xm)
put("svhn_mat", "compressed", header + struct.pack("<II", 15, len(z)) + z + ym)
print("seeds written to corpus/")
