// strata report layer — collecting a Model from a live heap, the report
// calls of <strata/state.h> (strata_write_report, strata_write_report_file)
// and the exit report (STRATA_SHOW_STATS, STRATA_REPORT), registered at the
// core's finalisation point.
// Layer: report (the core's public API, plus options.hpp and process.hpp for
// the exit hook).
#include <dlfcn.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "options.hpp"
#include "process.hpp"
#include "report.hpp"

#define STRATA_STR2(x) #x
#define STRATA_STR(x) STRATA_STR2(x)

namespace strata::report {

namespace {

void label_heap(Identity& m, strata_pool_t* pool) noexcept {
  if (!pool) {
    copy_string(m.heap, sizeof m.heap, "process heap");
    return;
  }
  char tmp[48];
  std::size_t n = 0;
  const char* p = "pool ";
  while (*p) tmp[n++] = *p++;
  auto v = reinterpret_cast<std::uintptr_t>(pool);
  tmp[n++] = '0';
  tmp[n++] = 'x';
  char digits[20];
  int k = 0;
  do {
    digits[k++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  while (k) tmp[n++] = digits[--k];
  tmp[n] = 0;
  copy_string(m.heap, sizeof m.heap, tmp);
}

void anchor() noexcept {}  // an address inside this copy of strata, for dladdr

}  // namespace

void copy_string(char* dst, std::size_t cap, const char* src) noexcept {
  std::size_t n = 0;
  for (; src && src[n] && n + 1 < cap; ++n) dst[n] = src[n];
  dst[n] = 0;
}

void identify(Identity& m, strata_pool_t* pool) noexcept {
  label_heap(m, pool);
  ssize_t n = ::readlink("/proc/self/exe", m.program, sizeof m.program - 1);
  m.program[n > 0 ? n : 0] = 0;
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&anchor), &info) && info.dli_fname) copy_string(m.module, sizeof m.module, info.dli_fname);
  if (!m.module[0]) copy_string(m.module, sizeof m.module, m.program);
  m.pid = ::getpid();
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  m.time = ts.tv_sec;
  copy_string(m.generator, sizeof m.generator, "strata " STRATA_STR(STRATA_VERSION_MAJOR) "." STRATA_STR(STRATA_VERSION_MINOR) "." STRATA_STR(STRATA_VERSION_PATCH));
}

bool collect(Model& m, strata_pool_t* pool, unsigned wait_ms, bool with_map) noexcept {
  m.state.size = sizeof m.state;
  if (strata_heap_state(pool, &m.state, wait_ms) != 0) return false;
  identify(m, pool);
  if (with_map) collect_map(m, pool, wait_ms);
  return true;
}

bool ends_with(const char* s, const char* suffix) noexcept {
  std::size_t n = std::strlen(s), k = std::strlen(suffix);
  return n >= k && std::strcmp(s + n - k, suffix) == 0;
}

int open_report_file(const char* path) noexcept {
  return ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
}

namespace {

int write_model(const Model& m, int fd, strata_report_format format) noexcept {
  Sink out(fd);
  switch (format) {
    case STRATA_REPORT_TEXT: write_text(out, m); break;
    case STRATA_REPORT_JSON: write_json(out, m); break;
    case STRATA_REPORT_SVG: write_svg(out, m); break;
    default: return -1;
  }
  out.flush();
  return out.failed() ? -1 : 0;
}

}  // namespace

bool expand_path(const char* path, char* out, std::size_t cap) noexcept {
  std::size_t n = 0;
  for (const char* p = path; *p; ++p) {
    if (p[0] == '%' && p[1] == 'p') {
      char digits[24];
      int k = 0;
      auto v = static_cast<unsigned long>(::getpid());
      do {
        digits[k++] = static_cast<char>('0' + v % 10);
        v /= 10;
      } while (v);
      while (k) {
        if (n + 1 >= cap) return false;
        out[n++] = digits[--k];
      }
      ++p;
      continue;
    }
    if (n + 1 >= cap) return false;
    out[n++] = *p;
  }
  out[n] = 0;
  return n != 0;
}

namespace {

void report_at_exit(void*) noexcept {
  using detail::Option;
  const bool show = detail::option_enabled(Option::kShowStats);
  const char* path = detail::option_path(Option::kReport);
  if (!show && !path) return;
  Model m;
  if (!collect(m, nullptr, STRATA_WAIT_FOREVER, true)) return;
  if (show) write_model(m, 2, STRATA_REPORT_TEXT);
  if (path) {
    char name[4096];
    if (!expand_path(path, name, sizeof name)) return;
    strata_report_format f = ends_with(name, ".json") ? STRATA_REPORT_JSON
                             : ends_with(name, ".svg") ? STRATA_REPORT_SVG
                                                       : STRATA_REPORT_TEXT;
    int fd = open_report_file(name);
    if (fd < 0) return;
    write_model(m, fd, f);
    ::close(fd);
  }
}

}  // namespace

void register_exit_report() noexcept { detail::process_on_finalize(report_at_exit, nullptr); }

}  // namespace strata::report

using namespace strata::report;

extern "C" {

STRATA_API const char* strata_map_use_name(strata_map_use use) noexcept { return use_name(use); }

STRATA_API int strata_write_report(strata_pool_t* pool, int fd, strata_report_format format, unsigned wait_ms) noexcept {
  if (fd < 0 || static_cast<unsigned>(format) > STRATA_REPORT_SVG) return -1;
  Model m;
  if (!collect(m, pool, wait_ms, true)) return -1;
  return write_model(m, fd, format);
}

STRATA_API int strata_write_report_file(strata_pool_t* pool, const char* path, strata_report_format format,
                                        unsigned wait_ms) noexcept {
  if (!path || !*path) return -1;
  if (format == STRATA_REPORT_BY_NAME)
    format = ends_with(path, ".json") ? STRATA_REPORT_JSON : ends_with(path, ".svg") ? STRATA_REPORT_SVG : STRATA_REPORT_TEXT;
  if (static_cast<unsigned>(format) > STRATA_REPORT_SVG) return -1;
  int fd = open_report_file(path);
  if (fd < 0) return -1;
  int r = strata_write_report(pool, fd, format, wait_ms);
  if (::close(fd) != 0) r = -1;
  return r;
}

}  // extern "C"
