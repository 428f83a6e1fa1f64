// Bindings for the blocking slow paths of Lock/RLock, Semaphore, Event,
// Condition, Barrier and SharedMemory wait/notify. Each takes the arena's
// ArrayBuffer and a slot offset, validated here before any pointer is formed.
#include <climits>

#include "core/sync.h"
#include "util.h"

namespace forksafe {

namespace {

struct Arg {
  uint8_t* base = nullptr;
  size_t len = 0;
};

bool GetBuf(const Napi::CallbackInfo& info, size_t i, Arg* out) {
  if (info.Length() <= i || !info[i].IsArrayBuffer()) return false;
  Napi::ArrayBuffer ab = info[i].As<Napi::ArrayBuffer>();
  out->base = static_cast<uint8_t*>(ab.Data());
  out->len = ab.ByteLength();
  return out->base != nullptr;
}

// The slot at `off` in the arena buffer, if it is in bounds, aligned, of one of
// the expected kinds, and large enough for its own declared size.
template <typename T>
T* GetSlot(const Napi::CallbackInfo& info, size_t buf_i, size_t off_i, uint32_t kind_a,
           uint32_t kind_b, const uint8_t** base_out) {
  Arg a;
  if (!GetBuf(info, buf_i, &a) || a.len != kArenaSize) return nullptr;
  const SegmentHeader* h = reinterpret_cast<const SegmentHeader*>(a.base);
  if (h->magic != kMagic || h->kind != kSegArena) return nullptr;
  double offd = ArgF64(info, off_i, -1);
  // Written so that NaN fails too.
  if (!(offd >= static_cast<double>(kArenaDataOffset) && offd < static_cast<double>(kArenaSize)))
    return nullptr;
  uint64_t off = static_cast<uint64_t>(offd);
  if ((off - kArenaDataOffset) % kUnit != 0 || off + sizeof(T) > a.len) return nullptr;
  SlotHeader* s = reinterpret_cast<SlotHeader*>(a.base + off);
  uint32_t kind = __atomic_load_n(&s->kind, __ATOMIC_SEQ_CST);
  uint32_t units = __atomic_load_n(&s->units, __ATOMIC_SEQ_CST);
  if (kind != kind_a && kind != kind_b) return nullptr;
  if (units == 0 || off + static_cast<uint64_t>(units) * kUnit > a.len) return nullptr;
  if (base_out) *base_out = a.base;
  return reinterpret_cast<T*>(s);
}

Napi::Value Status(Napi::Env env, int r, const char* syscall) {
  if (r < 0) {
    ThrowSystemError(env, r, syscall);
    return env.Undefined();
  }
  return Napi::Number::New(env, r);
}

Napi::Value Bad(Napi::Env env) { return Napi::Number::New(env, kBadHandle); }

uint32_t Token(const Napi::CallbackInfo& info, size_t i) {
  // Only the calling thread's own token is accepted: a forged token could
  // otherwise release someone else's lock.
  EnvData* d = GetEnvData(info.Env());
  uint32_t t = ArgU32(info, i);
  return (d && t == d->token) ? t : 0;
}

// lockAcquire(buf, off, token, timeoutMs, recursive) -> status
Napi::Value LockAcquire(const Napi::CallbackInfo& info) {
  const uint8_t* base;
  LockSlot* s = GetSlot<LockSlot>(info, 0, 1, kPrimLock, kPrimRLock, &base);
  uint32_t t = Token(info, 2);
  if (!s || !t) return Bad(info.Env());
  return Status(info.Env(), lock_acquire(base, s, t, TimeoutArg(info, 3), ArgBool(info, 4)), "futex");
}

Napi::Value LockSettle(const Napi::CallbackInfo& info) {
  LockSlot* s = GetSlot<LockSlot>(info, 0, 1, kPrimLock, kPrimRLock, nullptr);
  uint32_t t = Token(info, 2);
  if (!s || !t) return Bad(info.Env());
  return Status(info.Env(), lock_settle(s, t), "futex");
}

Napi::Value LockRelease(const Napi::CallbackInfo& info) {
  LockSlot* s = GetSlot<LockSlot>(info, 0, 1, kPrimLock, kPrimRLock, nullptr);
  uint32_t t = Token(info, 2);
  if (!s || !t) return Bad(info.Env());
  return Status(info.Env(), lock_release(s, t, ArgBool(info, 3)), "futex");
}

Napi::Value LockAbandon(const Napi::CallbackInfo& info) {
  LockSlot* s = GetSlot<LockSlot>(info, 0, 1, kPrimLock, kPrimRLock, nullptr);
  uint32_t t = Token(info, 2);
  if (!s || !t) return Bad(info.Env());
  return Status(info.Env(), lock_abandon(s, t), "futex");
}

Napi::Value LockMarkConsistent(const Napi::CallbackInfo& info) {
  LockSlot* s = GetSlot<LockSlot>(info, 0, 1, kPrimLock, kPrimRLock, nullptr);
  uint32_t t = Token(info, 2);
  if (!s || !t) return Bad(info.Env());
  return Status(info.Env(), lock_mark_consistent(s, t), "futex");
}

// Liveness of a token's holder, for owner() diagnostics and tests.
Napi::Value TokenAlive(const Napi::CallbackInfo& info) {
  Arg a;
  if (!GetBuf(info, 0, &a) || a.len != kArenaSize) return Bad(info.Env());
  return Napi::Boolean::New(info.Env(), token_alive(a.base, ArgU32(info, 1)));
}

Napi::Value SemAcquire(const Napi::CallbackInfo& info) {
  const uint8_t* base;
  SemSlot* s = GetSlot<SemSlot>(info, 0, 1, kPrimSemaphore, kPrimSemaphore, &base);
  if (!s) return Bad(info.Env());
  if ((s->flags & kSemUndo) &&
      (reinterpret_cast<const uint8_t*>(s) + sem_slot_units(true) * kUnit > base + kArenaSize))
    return Bad(info.Env());
  return Status(info.Env(), sem_acquire(base, s, TimeoutArg(info, 2)), "futex");
}

Napi::Value SemRelease(const Napi::CallbackInfo& info) {
  const uint8_t* base;
  SemSlot* s = GetSlot<SemSlot>(info, 0, 1, kPrimSemaphore, kPrimSemaphore, &base);
  if (!s) return Bad(info.Env());
  return Status(info.Env(), sem_release(base, s, ArgU32(info, 2)), "futex");
}

Napi::Value SemRecover(const Napi::CallbackInfo& info) {
  const uint8_t* base;
  SemSlot* s = GetSlot<SemSlot>(info, 0, 1, kPrimSemaphore, kPrimSemaphore, &base);
  if (!s) return Bad(info.Env());
  return Napi::Number::New(info.Env(), sem_recover(base, s));
}

Napi::Value EventWait(const Napi::CallbackInfo& info) {
  EventSlot* s = GetSlot<EventSlot>(info, 0, 1, kPrimEvent, kPrimEvent, nullptr);
  if (!s) return Bad(info.Env());
  return Status(info.Env(), event_wait(s, TimeoutArg(info, 2)), "futex");
}

Napi::Value EventWake(const Napi::CallbackInfo& info) {
  EventSlot* s = GetSlot<EventSlot>(info, 0, 1, kPrimEvent, kPrimEvent, nullptr);
  if (!s) return Bad(info.Env());
  return Status(info.Env(), event_wake_all(s), "futex");
}

// condWait(lockBuf, lockOff, recursive, condBuf, condOff, token, timeoutMs)
Napi::Value CondWait(const Napi::CallbackInfo& info) {
  const uint8_t* lbase;
  LockSlot* l = GetSlot<LockSlot>(info, 0, 1, kPrimLock, kPrimRLock, &lbase);
  CondSlot* c = GetSlot<CondSlot>(info, 3, 4, kPrimCondition, kPrimCondition, nullptr);
  uint32_t t = Token(info, 5);
  if (!l || !c || !t) return Bad(info.Env());
  return Status(info.Env(), cond_wait(lbase, l, ArgBool(info, 2), c, t, TimeoutArg(info, 6)), "futex");
}

Napi::Value CondNotify(const Napi::CallbackInfo& info) {
  CondSlot* c = GetSlot<CondSlot>(info, 0, 1, kPrimCondition, kPrimCondition, nullptr);
  if (!c) return Bad(info.Env());
  double n = ArgF64(info, 2, 1);
  // Written so that NaN and negatives give 0 (no float -> int overflow).
  uint32_t k = !(n >= 0) ? 0 : n >= static_cast<double>(UINT32_MAX) ? UINT32_MAX : static_cast<uint32_t>(n);
  return Napi::Number::New(info.Env(), cond_notify(c, k));
}

BarrierSlot* GetBarrier(const Napi::CallbackInfo& info, const uint8_t** base) {
  BarrierSlot* b = GetSlot<BarrierSlot>(info, 0, 1, kPrimBarrier, kPrimBarrier, base);
  if (!b) return nullptr;
  uint32_t parties = __atomic_load_n(&b->parties, __ATOMIC_SEQ_CST);
  if (parties == 0 || parties > kMaxParties || b->h.units < barrier_slot_units(parties))
    return nullptr;
  return b;
}

// barrierWait(buf, off, token, timeoutMs) -> [status, index]
Napi::Value BarrierWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* base;
  BarrierSlot* b = GetBarrier(info, &base);
  uint32_t t = Token(info, 2);
  if (!b || !t) return Bad(env);
  uint32_t index = 0;
  int r = barrier_wait(base, b, t, TimeoutArg(info, 3), &index);
  if (r < 0) return Status(env, r, "futex");
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, r));
  a.Set(1u, Napi::Number::New(env, index));
  return a;
}

Napi::Value BarrierReset(const Napi::CallbackInfo& info) {
  const uint8_t* base;
  BarrierSlot* b = GetBarrier(info, &base);
  uint32_t t = Token(info, 2);
  if (!b || !t) return Bad(info.Env());
  return Status(info.Env(), barrier_reset(base, b, t), "futex");
}

Napi::Value BarrierAbort(const Napi::CallbackInfo& info) {
  const uint8_t* base;
  BarrierSlot* b = GetBarrier(info, &base);
  uint32_t t = Token(info, 2);
  if (!b || !t) return Bad(info.Env());
  return Status(info.Env(), barrier_abort(base, b, t), "futex");
}

// wordWait(dataBuf, byteOffset, value, timeoutMs): SharedMemory.wait
Napi::Value WordWait(const Napi::CallbackInfo& info) {
  Arg a;
  double off = ArgF64(info, 1, -1);
  if (!GetBuf(info, 0, &a) || !(off >= 0 && off + 4 <= static_cast<double>(a.len)) ||
      static_cast<uint64_t>(off) % 4 != 0) {
    return Bad(info.Env());
  }
  uint32_t* w = reinterpret_cast<uint32_t*>(a.base + static_cast<uint64_t>(off));
  return Status(info.Env(), word_wait(w, static_cast<uint32_t>(ArgI32(info, 2)), TimeoutArg(info, 3)), "futex");
}

Napi::Value WordWake(const Napi::CallbackInfo& info) {
  Arg a;
  double off = ArgF64(info, 1, -1);
  if (!GetBuf(info, 0, &a) || !(off >= 0 && off + 4 <= static_cast<double>(a.len)) ||
      static_cast<uint64_t>(off) % 4 != 0) {
    return Napi::Number::New(info.Env(), -1);
  }
  double n = ArgF64(info, 2, INT_MAX);
  if (!(n >= 1)) return Napi::Number::New(info.Env(), 0);  // FUTEX_WAKE(0) would wake one
  int k = n >= INT_MAX ? INT_MAX : static_cast<int>(n);
  int r = futex_wake(reinterpret_cast<uint32_t*>(a.base + static_cast<uint64_t>(off)), k);
  return Status(info.Env(), r, "futex");
}

}  // namespace

void RegisterSync(Napi::Env env, Napi::Object exports) {
  exports.Set("lockAcquire", Napi::Function::New(env, LockAcquire, "lockAcquire"));
  exports.Set("lockSettle", Napi::Function::New(env, LockSettle, "lockSettle"));
  exports.Set("lockRelease", Napi::Function::New(env, LockRelease, "lockRelease"));
  exports.Set("lockAbandon", Napi::Function::New(env, LockAbandon, "lockAbandon"));
  exports.Set("lockMarkConsistent", Napi::Function::New(env, LockMarkConsistent, "lockMarkConsistent"));
  exports.Set("tokenAlive", Napi::Function::New(env, TokenAlive, "tokenAlive"));
  exports.Set("semAcquire", Napi::Function::New(env, SemAcquire, "semAcquire"));
  exports.Set("semRelease", Napi::Function::New(env, SemRelease, "semRelease"));
  exports.Set("semRecover", Napi::Function::New(env, SemRecover, "semRecover"));
  exports.Set("eventWait", Napi::Function::New(env, EventWait, "eventWait"));
  exports.Set("eventWake", Napi::Function::New(env, EventWake, "eventWake"));
  exports.Set("condWait", Napi::Function::New(env, CondWait, "condWait"));
  exports.Set("condNotify", Napi::Function::New(env, CondNotify, "condNotify"));
  exports.Set("barrierWait", Napi::Function::New(env, BarrierWait, "barrierWait"));
  exports.Set("barrierReset", Napi::Function::New(env, BarrierReset, "barrierReset"));
  exports.Set("barrierAbort", Napi::Function::New(env, BarrierAbort, "barrierAbort"));
  exports.Set("wordWait", Napi::Function::New(env, WordWait, "wordWait"));
  exports.Set("wordWake", Napi::Function::New(env, WordWake, "wordWake"));
}

}  // namespace forksafe
