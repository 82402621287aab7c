// Makes strings and vectors the executable and the other plugin free.
#include <string>
#include <vector>

extern "C" std::string* greet(const char* who) { return new std::string("hello, " + std::string(who) + "!"); }
extern "C" std::vector<int>* squares(int n) {
  auto* v = new std::vector<int>;
  for (int i = 0; i < n; ++i) v->push_back(i * i);
  return v;
}
