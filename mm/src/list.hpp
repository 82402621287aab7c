// strata — intrusive doubly-linked lists: the one copy of push and unlink
// that every list of the core uses (heaps, thread caches, spans, partial and
// owned spans, medium pools and bins, large blocks and kept mappings).
// A list is named by its two link members; nodes carry the links, the owner
// holds the head (and, for lists with a tail, the tail).  Nothing here locks:
// the caller holds whatever lock guards the list (see lock.hpp).
// Layer: bottom (no strata includes).
#pragma once

namespace strata::detail {

template <auto Next, auto Prev>
struct IntrusiveList {
  // n becomes the first node.
  template <class T>
  static void push_front(T*& head, T* n) noexcept {
    n->*Prev = nullptr;
    n->*Next = head;
    if (head) head->*Prev = n;
    head = n;
  }
  // Unlinks n (which is on the list); n's own links are left as they were.
  template <class T>
  static void remove(T*& head, T* n) noexcept {
    if (n->*Prev) (n->*Prev)->*Next = n->*Next; else head = n->*Next;
    if (n->*Next) (n->*Next)->*Prev = n->*Prev;
  }
  // The same for a list that also keeps its last node.
  template <class T>
  static void push_front(T*& head, T*& tail, T* n) noexcept {
    n->*Prev = nullptr;
    n->*Next = head;
    if (head) head->*Prev = n; else tail = n;
    head = n;
  }
  template <class T>
  static void remove(T*& head, T*& tail, T* n) noexcept {
    if (n->*Prev) (n->*Prev)->*Next = n->*Next; else head = n->*Next;
    if (n->*Next) (n->*Next)->*Prev = n->*Prev; else tail = n->*Prev;
  }
  // Whether n is on the list: O(length), for validators.
  template <class T>
  static bool contains(const T* head, const T* n) noexcept {
    for (const T* x = head; x; x = x->*Next)
      if (x == n) return true;
    return false;
  }
};

}  // namespace strata::detail
