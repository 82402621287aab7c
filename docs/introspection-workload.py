# A CPython workload under LD_PRELOAD=libstrata.so that asks strata for its
# JSON report (ctypes reaches strata_write_report_file) before it builds its
# data and while the data is live; strata-report turns them into the text,
# the picture and the diff of docs/introspection.md:
#   PYTHONMALLOC=malloc LD_PRELOAD=build/release/mm/libstrata.so \
#     python3 docs/introspection-workload.py /tmp/py
#   strata-report /tmp/py.json --svg docs/introspection-python.svg
#   strata-report diff /tmp/py-before.json /tmp/py.json
import ctypes, random, sys
strata = ctypes.CDLL(None)
strata.strata_write_report_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint]
JSON, WAIT_FOREVER = 1, 0xffffffff
out = sys.argv[1]
assert strata.strata_write_report_file(None, ("%s-before.json" % out).encode(), JSON, WAIT_FOREVER) == 0
random.seed(1)
words = {"".join(random.choice("abcdefghij") for _ in range(random.randint(3, 40))): i for i in range(300000)}
records = [{"id": i, "name": "n%d" % i, "tags": ["t%d" % (i % 7)] * (i % 5)} for i in range(100000)]
blobs = [bytes(random.randint(3000, 200000)) for i in range(300)]
images = [bytearray(4 << 20) for i in range(6)]
del records[::3]
assert strata.strata_write_report_file(None, ("%s.json" % out).encode(), JSON, WAIT_FOREVER) == 0
