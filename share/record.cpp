// strata — reading the shared name: the record is untrusted input, checked
// field by field before anything in it is believed (docs/sharing.md, "The
// threat model").
#include "record.hpp"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace strata::share {

using detail::MessageBuilder;

namespace {

std::uint64_t mix(std::uint64_t h, std::uint64_t v) noexcept {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 29);
}

// Field 22 of /proc/self/stat (after the command name, which may hold
// spaces and parentheses: counted from the last ')').
std::uint64_t start_time() noexcept {
  int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');
  if (!p) return 0;
  // After ") " come fields 3, 4, ...; field 22 is the 20th of them.
  for (int field = 3; field < 22 && *p; ++p)
    if (*p == ' ') ++field;
  std::uint64_t v = 0;
  for (; *p >= '0' && *p <= '9'; ++p) v = v * 10 + static_cast<std::uint64_t>(*p - '0');
  return v;
}

// A digest of the 16 random bytes the kernel gives every exec (AT_RANDOM):
// the same in every module of the process and after fork, another after
// exec.  The bytes themselves (glibc's stack guard is made from them) never
// leave the process.
std::uint64_t exec_id() noexcept {
  const auto* r = reinterpret_cast<const unsigned char*>(getauxval(AT_RANDOM));
  if (!r) return 0;
  std::uint64_t a, b;
  std::memcpy(&a, r, 8);
  std::memcpy(&b, r + 8, 8);
  return mix(mix(0x5354524154414d4dull, a), b);
}

void append_dec(char*& p, std::uint64_t v) noexcept {
  char tmp[24];
  int n = 0;
  do tmp[n++] = static_cast<char>('0' + v % 10); while (v /= 10);
  while (n) *p++ = tmp[--n];
}

struct Segments {
  std::uintptr_t addr;   // in: the address looked for
  std::size_t len;       // in
  int index = -1;        // out: the module's position in the link map (0: the program)
  const dl_phdr_info* info = nullptr;
  bool read_only = false;  // [addr, addr+len) lies in a non-writable PT_LOAD or in PT_GNU_RELRO
  dl_phdr_info copy{};
};

bool in(std::uintptr_t a, std::size_t len, std::uintptr_t lo, std::size_t size) noexcept {
  return a >= lo && a - lo <= size && len <= size - (a - lo);
}

int find_segment(dl_phdr_info* info, size_t, void* ctx) noexcept {
  auto* f = static_cast<Segments*>(ctx);
  ++f->index;
  bool inside = false, ro = false;
  for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && in(f->addr, f->len, lo, ph.p_memsz)) {
      inside = true;
      if (!(ph.p_flags & PF_W)) ro = true;
    }
    if (ph.p_type == PT_GNU_RELRO && in(f->addr, f->len, lo, ph.p_memsz)) ro = true;
  }
  if (!inside) return 0;
  f->read_only = ro;
  f->copy = *info;
  f->info = &f->copy;
  return 1;
}

// Whether [addr, addr+1) is executable code of the module `info`.
bool code_of(const dl_phdr_info* info, const void* fn) noexcept {
  auto a = reinterpret_cast<std::uintptr_t>(fn);
  for (unsigned i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && in(a, 1, info->dlpi_addr + ph.p_vaddr, ph.p_memsz))
      return true;
  }
  return false;
}

}  // namespace

Self self() noexcept {
  return Self{static_cast<std::int64_t>(::getpid()), static_cast<std::uint64_t>(::geteuid()), start_time(),
              exec_id()};
}

void record_path(char (&out)[64], const Self& s) noexcept {
  char* p = out;
  const char prefix[] = "/dev/shm/strata-mm-";
  std::memcpy(p, prefix, sizeof prefix - 1);
  p += sizeof prefix - 1;
  append_dec(p, s.uid);
  *p++ = '-';
  append_dec(p, static_cast<std::uint64_t>(s.pid));
  *p = 0;
}

std::uint64_t record_check(const Record& r) noexcept {
  std::uint64_t h = mix(r.magic, (std::uint64_t{r.abi} << 32) | r.size);
  h = mix(h, static_cast<std::uint64_t>(r.pid));
  h = mix(h, r.uid);
  h = mix(h, r.start_time);
  h = mix(h, r.exec_id);
  return mix(h, r.table);
}

Record make_record(const Self& s, const Table* table, const char* module) noexcept {
  Record r{};
  r.magic = kRecordMagic;
  r.abi = kAbi;
  r.size = sizeof(Record);
  r.pid = s.pid;
  r.uid = s.uid;
  r.start_time = s.start_time;
  r.exec_id = s.exec_id;
  r.table = reinterpret_cast<std::uintptr_t>(table);
  std::size_t n = module ? std::strlen(module) : 0;
  if (n >= sizeof r.module) n = sizeof r.module - 1;
  if (n) std::memcpy(r.module, module, n);
  r.check = record_check(r);
  return r;
}

bool table_valid(const Table* t, MessageBuilder& why) noexcept {
  Segments f{reinterpret_cast<std::uintptr_t>(t), sizeof(Table)};
  dl_iterate_phdr(find_segment, &f);
  if (!f.info) {
    why.str("its table address ").ptr(t).str(" lies in no module loaded in this process");
    return false;
  }
  if (!f.read_only) {
    why.str("its table address ").ptr(t).str(" lies in writable memory of ").str(f.info->dlpi_name);
    return false;
  }
  if ((reinterpret_cast<std::uintptr_t>(t) & (alignof(Table) - 1)) != 0 || t->magic != kTableMagic ||
      t->self != t) {
    why.str("its table address ").ptr(t).str(" is not a strata share table");
    return false;
  }
  if (t->abi != kAbi || t->size != sizeof(Table) || t->layout != kLayout) {
    why.str("its table is of share ABI ").dec(t->abi).str(" (this module: ").dec(kAbi).str(")");
    return false;
  }
  bool ok = code_of(f.info, reinterpret_cast<const void*>(t->owns)) &&
            (!t->free_any || code_of(f.info, reinterpret_cast<const void*>(t->free_any)));
#define STRATA_SHARE_FN(name, ret, params, args) ok = ok && code_of(f.info, reinterpret_cast<const void*>(t->fn_##name));
#include "api.def"
#undef STRATA_SHARE_FN
  if (!ok) {
    why.str("its table holds a function outside the code of its own module");
    return false;
  }
  return true;
}

bool module_of(const void* addr, char (&path)[256], bool* main_program) noexcept {
  Segments f{reinterpret_cast<std::uintptr_t>(addr), 1};
  dl_iterate_phdr(find_segment, &f);
  if (!f.info) return false;
  *main_program = f.index == 0;
  path[0] = 0;
  const char* name = f.info->dlpi_name;
  if (f.index == 0 || !name || !*name) {
    ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    path[n > 0 ? n : 0] = 0;
    return true;
  }
  std::size_t n = std::strlen(name);
  if (n >= sizeof path) n = sizeof path - 1;
  std::memcpy(path, name, n);
  path[n] = 0;
  return true;
}

Lookup lookup(const char* path, const Self& s, MessageBuilder& why) noexcept {
  Lookup out;
  int fd = ::open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    struct stat link;
    if (err == ENOENT) {
      why.str("no manager is shared in this process (").str(path).str(" does not exist)");
      out.found = Found::kNone;
    } else if (err == ELOOP && ::lstat(path, &link) == 0) {  // a symbolic link: never followed
      out.dev = link.st_dev;
      out.ino = link.st_ino;
      if (link.st_uid != s.uid) {
        why.str(path).str(" is a symbolic link owned by uid ").dec(link.st_uid);
        out.found = Found::kForeignOwner;
      } else {
        why.str(path).str(" is a symbolic link, not a record");
        out.found = Found::kBad;
      }
    } else {
      why.str("cannot read ").str(path).str(" (errno ").dec(static_cast<unsigned>(err)).str(")");
      out.found = Found::kError;
    }
    return out;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    why.str("cannot stat ").str(path);
    out.found = Found::kError;
    return out;
  }
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  if (st.st_uid != s.uid) {
    ::close(fd);
    why.str(path).str(" is owned by uid ").dec(st.st_uid).str(", not by this process's user ").dec(s.uid);
    out.found = Found::kForeignOwner;
    return out;
  }
  if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
    ::close(fd);
    why.str(path).str(" is not a private regular file (mode 0").dec((st.st_mode >> 6) & 7)
        .dec((st.st_mode >> 3) & 7).dec(st.st_mode & 7).str(")");
    out.found = Found::kLoose;
    return out;
  }
  Record r{};
  ssize_t n = st.st_size >= 0 && static_cast<std::size_t>(st.st_size) <= sizeof r ? ::pread(fd, &r, sizeof r, 0)
                                                                                    : -1;
  ::close(fd);
  // The header's first seven fields keep their places in every ABI, so a
  // record of another version is still recognised as this process's or not.
  constexpr std::size_t kHeader = offsetof(Record, table);
  if (n < static_cast<ssize_t>(kHeader) || r.magic != kRecordMagic) {
    why.str(path).str(" does not hold a strata record (").dec(static_cast<std::uint64_t>(st.st_size))
        .str(" bytes)");
    out.found = Found::kBad;
    return out;
  }
  if (r.pid != s.pid || r.uid != s.uid || r.start_time != s.start_time || r.exec_id != s.exec_id) {
    why.str(path).str(" was left by another process (pid ").dec(static_cast<std::uint64_t>(r.pid))
        .str(r.pid == s.pid ? ", reused, or an earlier exec of this one): stale" : "): stale");
    out.found = Found::kStale;
    return out;
  }
  if (r.abi != kAbi || r.size != sizeof(Record) || n != static_cast<ssize_t>(sizeof(Record))) {
    why.str(path).str(" is a record of share ABI ").dec(r.abi).str(" (").dec(r.size)
        .str(" bytes); this module speaks ABI ").dec(kAbi);
    out.found = Found::kVersion;
    return out;
  }
  if (r.check != record_check(r)) {
    why.str(path).str(" fails its check: forged or torn");
    out.found = Found::kBad;
    return out;
  }
  r.module[sizeof r.module - 1] = 0;
  const auto* t = reinterpret_cast<const Table*>(static_cast<std::uintptr_t>(r.table));
  MessageBuilder table_why;
  if (!table_valid(t, table_why)) {
    why.str(path).str(": ").str(table_why.c_str());
    out.found = Found::kBad;
    return out;
  }
  why.str("found the manager of ").str(r.module).str(" under ").str(path);
  out.found = Found::kValid;
  out.table = t;
  out.record = r;
  return out;
}

}  // namespace strata::share
