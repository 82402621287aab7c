# A CPython workload under LD_PRELOAD=libstrata.so that asks strata for its
# reports while its data is live (ctypes reaches strata_write_report_file).
import ctypes, json, random, sys
strata = ctypes.CDLL(None)
strata.strata_write_report_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint]
random.seed(1)
words = {"".join(random.choice("abcdefghij") for _ in range(random.randint(3, 40))): i for i in range(300000)}
records = [{"id": i, "name": "n%d" % i, "tags": ["t%d" % (i % 7)] * (i % 5)} for i in range(100000)]
blobs = [bytes(random.randint(3000, 200000)) for i in range(300)]
images = [bytearray(4 << 20) for i in range(6)]
del records[::3]
out = sys.argv[1]
for fmt, ext in ((1, "json"), (2, "svg"), (0, "txt")):
    assert strata.strata_write_report_file(None, ("%s.%s" % (out, ext)).encode(), fmt, 0xffffffff) == 0
