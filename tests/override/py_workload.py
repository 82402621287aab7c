"""Allocation-heavy CPython workload with a deterministic output (run with
PYTHONMALLOC=malloc and PYTHONHASHSEED=0 so every object goes through malloc)."""
import hashlib, json, pickle, re, threading, collections, io, zlib

def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]

out = []
# Dicts and strings: 200k entries, rebuilt and resized.
d = {f"key-{i:07d}-{'x' * (i % 37)}": [i, str(i) * (i % 5), (i, -i)] for i in range(200_000)}
for i in range(0, 200_000, 3):
    del d[f"key-{i:07d}-{'x' * (i % 37)}"]
out.append(("dict", len(d), digest(sorted(d)[::997])))
# JSON and pickle round trips of a nested structure.
tree = {"n": [{"id": i, "tags": [f"t{j}" for j in range(i % 13)], "v": i * 0.5} for i in range(30_000)]}
s = json.dumps(tree, sort_keys=True)
assert json.loads(s) == tree
p = pickle.dumps(tree, protocol=5)
assert pickle.loads(p) == tree
out.append(("json", len(s), hashlib.sha256(s.encode()).hexdigest()[:16]))
out.append(("zlib", len(zlib.compress(p, 6))))
# Growing buffers (realloc paths): list, bytearray, str join, StringIO.
b = bytearray()
lst = []
for i in range(300_000):
    b += i.to_bytes(4, "little")
    lst.append(i ^ (i >> 3))
sio = io.StringIO()
for i in range(100_000):
    sio.write(f"{i:x},")
out.append(("grow", len(b), hashlib.sha256(b).hexdigest()[:16], sum(lst), len(sio.getvalue())))
# Regex on a large text, sets, Counter, sorting.
text = " ".join(f"w{i % 1000}x{i % 7}" for i in range(200_000))
words = re.findall(r"w(\d+)x([0-6])", text)
c = collections.Counter(w for w, _ in words)
out.append(("re", len(words), c.most_common(3)))
sa = set(range(0, 500_000, 3)); sb = set(range(0, 500_000, 5))
out.append(("set", len(sa & sb), len(sa | sb), len(sa ^ sb)))
out.append(("sort", digest(sorted((str(i * 7919 % 100_003) for i in range(100_000)), key=lambda x: (len(x), x))[::5000])))

# Threads allocating and freeing objects created by each other.
results = [None] * 4
shared = collections.deque()
lock = threading.Lock()
def worker(k):
    acc = 0
    for r in range(40):
        chunk = [bytes([k, r % 256]) * (1 + (i % 200)) for i in range(2_000)]
        with lock:
            shared.append(chunk)
            other = shared.popleft() if len(shared) > 2 else []
        acc += sum(len(x) for x in other)
    results[k] = acc
ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for t in ts: t.start()
for t in ts: t.join()
out.append(("threads", sum(results) + sum(sum(len(x) for x in ch) for ch in shared)))

for line in out:
    print(*line)
