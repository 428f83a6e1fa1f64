// Sequentially consistent atomics on plain fields of the shared layouts (the
// structs in layout.h are plain data so that their offsets are fixed; every
// access to a field another process may write goes through these).
#pragma once

namespace forksafe {

template <typename T>
inline T aload(const T* p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
template <typename T>
inline void astore(T* p, T v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
template <typename T>
inline bool acas(T* p, T* expected, T desired) {
  return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST);
}

}  // namespace forksafe
