// share_probe CASE: a program without strata that puts something under its
// own shared name first (as another process, another user or a crashed
// earlier run could), then loads two strata::simple_share plugins and checks
// what they decided.  One case a process (tests/share/CMakeLists.txt).
// Exit 0: as expected; 77: skipped (the case needs root); else failed.
#include <dlfcn.h>
#include <fcntl.h>
#include <strata/share.h>
#include <strata/strata.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "record.hpp"

using namespace strata::share;

namespace {

int g_failures = 0;
#define EXPECT(cond)                                                       \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "share_probe: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                        \
    }                                                                      \
  } while (0)

struct Mod {
  void* h;
  int (*status)(strata_mm_status_t*);
  void* (*malloc_)(size_t);
  void (*free_)(void*);
  int (*strata_free_)(void*);
  strata_mm_status_t get() const {
    strata_mm_status_t s{};
    s.size = sizeof s;
    status(&s);
    return s;
  }
};

Mod load(const char* path) {
  Mod m{};
  m.h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!m.h) {
    std::fprintf(stderr, "share_probe: %s\n", dlerror());
    std::exit(2);
  }
  m.status = reinterpret_cast<int (*)(strata_mm_status_t*)>(dlsym(m.h, "plug_status"));
  m.malloc_ = reinterpret_cast<void* (*)(size_t)>(dlsym(m.h, "plug_malloc"));
  m.free_ = reinterpret_cast<void (*)(void*)>(dlsym(m.h, "plug_free"));
  m.strata_free_ = reinterpret_cast<int (*)(void*)>(dlsym(m.h, "plug_strata_free"));
  if (!m.status || !m.malloc_ || !m.free_ || !m.strata_free_) std::exit(2);
  return m;
}

std::string name_of_this_process() {
  char path[64];
  record_path(path, self());
  return path;
}

void put(const std::string& path, const void* data, size_t n, mode_t mode) {
  unlink(path.c_str());
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0 || write(fd, data, n) != static_cast<ssize_t>(n) || fchmod(fd, mode) != 0) {
    std::perror("share_probe: put");
    std::exit(2);
  }
  close(fd);
}

const char* role_name(strata_mm_role r) {  // the probe has no strata of its own
  return r == STRATA_MM_OWN ? "own" : r == STRATA_MM_SHARING ? "sharing" : "using shared";
}

bool contains(const char* s, const char* part) { return std::strstr(s, part) != nullptr; }

// Loads both plugins and says what each decided.
struct Both {
  Mod a, b;
  strata_mm_status_t sa, sb;
};
Both load_both() {
  Both x{load(SHARE_PLUGIN_A), load(SHARE_PLUGIN_B), {}, {}};
  x.sa = x.a.get();
  x.sb = x.b.get();
  std::fprintf(stderr, "a: %s: %s\nb: %s: %s\n", role_name(x.sa.role), x.sa.reason, role_name(x.sb.role),
               x.sb.reason);
  return x;
}

// The two plugins load; the first finds the name unusable, so it shares its
// own heap (replacing what was there), and the second uses it.
void expect_replaced(const char* word) {
  auto [a, b, sa, sb] = load_both();
  EXPECT(sa.role == STRATA_MM_SHARING);
  EXPECT(sb.role == STRATA_MM_USING_SHARED);
  EXPECT(std::string(sb.provider) == sa.module);
  void* p = a.malloc_(100);
  b.free_(p);  // shared: b frees a's block
  struct stat st;
  EXPECT(lstat(name_of_this_process().c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600);
  EXPECT(contains(sa.reason, word));
}

// Neither plugin may follow nor remove what is there: both keep their own heaps.
void expect_refused(const char* word) {
  auto [a, b, sa, sb] = load_both();
  EXPECT(sa.role == STRATA_MM_OWN);
  EXPECT(sb.role == STRATA_MM_OWN);
  EXPECT(contains(sa.reason, word));
  EXPECT(contains(sb.reason, word));
  void* p = a.malloc_(100);
  EXPECT(b.strata_free_(p) == STRATA_ERROR_FOREIGN_POINTER);  // b's own heap refuses a's block
  a.free_(p);
}

Record valid_header() {
  Self s = self();
  return make_record(s, nullptr, "forged");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::string c = argv[1];
  std::string name = name_of_this_process();
  if (c == "none") {
    // No name: the first plugin shares (and pins itself), the second uses it;
    // the first stays loaded after its dlclose, so the second's blocks live on.
    Mod a = load(SHARE_PLUGIN_A), b = load(SHARE_PLUGIN_B);
    strata_mm_status_t sa = a.get();
    EXPECT(sa.role == STRATA_MM_SHARING);
    EXPECT(contains(sa.reason, "pinned"));
    EXPECT(b.get().role == STRATA_MM_USING_SHARED);
    void* p = b.malloc_(5000);
    EXPECT(dlclose(a.h) == 0);
    void* again = dlopen(SHARE_PLUGIN_A, RTLD_NOW | RTLD_NOLOAD);
    EXPECT(again != nullptr);  // pinned
    b.free_(p);
    p = b.malloc_(70000);
    b.free_(p);
  } else if (c == "garbage") {  // this user's file, 0600, not a record
    char junk[200];
    std::memset(junk, 0x41, sizeof junk);
    put(name, junk, sizeof junk, 0600);
    expect_replaced("replaced");
  } else if (c == "loose") {  // this user's, but group/world-accessible
    Record r = valid_header();
    put(name, &r, sizeof r, 0644);
    expect_replaced("replaced");
  } else if (c == "stale") {  // a record of a process that is gone, whose pid this one got
    Record r = valid_header();
    r.start_time += 1;
    r.check = record_check(r);
    put(name, &r, sizeof r, 0600);
    expect_replaced("stale");
  } else if (c == "other-process") {  // another process's record under this name
    Record r = valid_header();
    r.pid = 1;
    r.check = record_check(r);
    put(name, &r, sizeof r, 0600);
    expect_replaced("stale");
  } else if (c == "forged-check") {  // a record whose digest does not match
    Record r = valid_header();
    r.table ^= 0x1000;
    put(name, &r, sizeof r, 0600);
    expect_replaced("forged");
  } else if (c == "forged-table") {
    // All fields right, the digest too, but the table is a copy in writable
    // memory (and, second run, on the stack, in no module at all).
    static Table fake;
    std::memset(&fake, 0, sizeof fake);
    fake.magic = kTableMagic;
    fake.abi = kAbi;
    fake.size = sizeof(Table);
    fake.layout = kLayout;
    fake.self = &fake;
    Record r = make_record(self(), &fake, "forged");
    put(name, &r, sizeof r, 0600);
    expect_replaced("writable");
  } else if (c == "forged-stack") {
    char buf[sizeof(Table)];
    Record r = make_record(self(), reinterpret_cast<const Table*>(buf), "forged");
    put(name, &r, sizeof r, 0600);
    expect_replaced("no module");
  } else if (c == "symlink") {  // the name is a symbolic link (to a file the attacker wants written)
    unlink(name.c_str());
    if (symlink("/etc/hostname", name.c_str()) != 0) return 2;
    expect_replaced("replaced");
  } else if (c == "version") {  // a live record of this process of another ABI
    Record r = valid_header();
    r.abi = kAbi + 98;
    r.check = record_check(r);
    put(name, &r, sizeof r, 0600);
    expect_refused("ABI");
    unlink(name.c_str());
  } else if (c == "other-user") {  // squatted by another user (needs root to set that up)
    if (geteuid() != 0) {
      std::fprintf(stderr, "share_probe: SKIP: other-user needs root\n");
      return 77;
    }
    Record r = valid_header();
    put(name, &r, sizeof r, 0600);
    if (chown(name.c_str(), 65534, 65534) != 0) return 2;
    expect_refused("owned by uid 65534");
    struct stat st;
    EXPECT(lstat(name.c_str(), &st) == 0 && st.st_uid == 65534);  // left alone
    unlink(name.c_str());
  } else if (c == "disabled") {  // STRATA_SHARE=0 (set by the test): nobody shares
    expect_refused("STRATA_SHARE=0");
    struct stat st;
    EXPECT(lstat(name.c_str(), &st) != 0);
  } else if (c == "exec") {
    // An exec keeps the pid and the start time, and skips the destructors:
    // the name published before it is still there, pointing at the old image.
    Mod a = load(SHARE_PLUGIN_A);
    EXPECT(a.get().role == STRATA_MM_SHARING);
    execl("/proc/self/exe", argv[0], "after-exec", static_cast<char*>(nullptr));
    return 3;
  } else if (c == "after-exec") {
    struct stat st;
    EXPECT(lstat(name.c_str(), &st) == 0);  // left by the image before the exec
    expect_replaced("stale");
  } else {
    return 2;
  }
  return g_failures ? 1 : 0;
}
