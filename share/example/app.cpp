// Loads both plugins, passes blocks between them, prints who shares.
#include <dlfcn.h>
#include <strata/share.h>
#include <strata/strata.h>

#include <cstdio>
#include <string>
#include <vector>

template <typename F>
F sym(void* h, const char* name) {
  return reinterpret_cast<F>(dlsym(h, name));
}

int main() {
  strata_mm_status_t st{};
  st.size = sizeof st;
  strata_memory_manager_status(&st);
  std::printf("app: %s (%s)\n", strata_mm_role_name(st.role), st.reason);

  void* g = dlopen(GREETER, RTLD_NOW | RTLD_LOCAL);
  void* c = dlopen(COUNTER, RTLD_NOW | RTLD_LOCAL);
  if (!g || !c) return std::printf("app: %s\n", dlerror()), 1;
  auto greet = sym<std::string* (*)(const char*)>(g, "greet");
  auto squares = sym<std::vector<int>* (*)(int)>(g, "squares");
  auto sum_and_free = sym<long (*)(std::vector<int>*)>(c, "sum_and_free");
  auto shout_and_free = sym<void (*)(std::string*)>(c, "shout_and_free");
  auto counter_role = sym<int (*)()>(c, "counter_role");

  strata_heap_summary_t before{}, after{};
  before.size = after.size = sizeof before;
  strata_heap_summary(nullptr, &before);
  std::string* s = greet("plugins");          // made in the greeter
  std::vector<int>* v = squares(1000);        // made in the greeter
  strata_heap_summary(nullptr, &after);       // ... counted in the app's heap
  std::printf("app: %s\n", s->c_str());
  shout_and_free(s);                          // freed in the counter
  dlclose(g);                                 // the greeter goes; its vector lives on
  long sum = sum_and_free(v);
  auto* mine = new std::string(300, 'x');     // made in the app
  shout_and_free(mine);                       // freed in the counter
  int role = counter_role();
  std::printf("app: sum %ld, counter %s, app heap grew by %zu blocks while the greeter allocated\n", sum,
              strata_mm_role_name(static_cast<strata_mm_role>(role)),
              after.small_blocks + after.medium_blocks - before.small_blocks - before.medium_blocks);
  dlclose(c);
  bool ok = st.role == STRATA_MM_SHARING && role == STRATA_MM_USING_SHARED && sum == 332833500L &&
            after.small_blocks + after.medium_blocks > before.small_blocks + before.medium_blocks;
  return ok ? 0 : 1;
}
