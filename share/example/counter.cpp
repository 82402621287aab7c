// Takes ownership of what the greeter and the executable made.
#include <strata/share.h>

#include <numeric>
#include <string>
#include <vector>

extern "C" long sum_and_free(std::vector<int>* v) {
  long s = std::accumulate(v->begin(), v->end(), 0L);
  delete v;
  return s;
}
extern "C" void shout_and_free(std::string* s) {
  s->append(" (heard by the counter)");
  delete s;
}
extern "C" int counter_role() {
  strata_mm_status_t st{};
  st.size = sizeof st;
  strata_memory_manager_status(&st);
  return st.role;
}
