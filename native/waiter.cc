// Bindings for the async twins (…Async methods): submit a wait to the native
// waiter threads (core/waiter_linux.cc), cancel it, and deliver completions to
// the JS thread that asked, through that thread's thread-safe function.
//
// Lifetime: an op is owned by this binding from submit until its completion
// has been delivered on the JS thread (or dropped, if the thread is gone).
// Each op holds a view of its segment (the mapping cannot go away under the
// waiter) and a reference on the env's thread-safe function. Pending ops keep
// the event loop alive, as a pending timer does.
#include <climits>
#include <mutex>
#include <unordered_map>

#include "core/deathwatch.h"
#include "core/segment.h"
#include "core/sync.h"
#include "core/waiter.h"
#include "util.h"

namespace forksafe {

namespace {

struct AsyncState;

struct Op : AsyncOp {
  uint32_t id = 0;
  uint32_t seg = 0;
  uint32_t seg2 = 0;  // kAsyncCond: the lock's segment when it is another one
  AsyncState* state = nullptr;
};

struct AsyncState {
  // Guards `alive` and every use of tsfn from waiter threads: once the JS
  // thread's cleanup hook has run, the thread-safe function may be gone and
  // completions are dropped instead (Drop undoes what they acquired).
  std::mutex mu;
  bool alive = true;
  napi_threadsafe_function tsfn = nullptr;
  uint32_t next_id = 1;
  uint32_t pending = 0;
  bool closing = false;
  std::unordered_map<uint32_t, Op*> ops;
};

AsyncState* StateOf(napi_env env) {
  EnvData* d = GetEnvData(Napi::Env(env));
  return d ? static_cast<AsyncState*>(d->async) : nullptr;
}

void ReleaseViews(Op* op) {
  segment_release(op->seg);
  if (op->seg2) segment_release(op->seg2);
}

// An op whose JS thread is gone: undo what it acquired, free it.
void Drop(Op* op) {
  if ((op->kind == kAsyncLock || op->kind == kAsyncCond) &&
      (op->status == kOk || op->status == kOwnerDied || op->status == kTimedOut ||
       op->status == kCancelled)) {
    uint8_t* slot = op->kind == kAsyncLock ? op->slot : op->lock_slot;
    bool held = op->kind == kAsyncCond || op->status == kOk || op->status == kOwnerDied;
    if (held) lock_abandon(reinterpret_cast<LockSlot*>(slot), op->token);
  } else if (op->kind == kAsyncSem && op->status == kOk) {
    sem_release(op->base, reinterpret_cast<SemSlot*>(op->slot), 1);
  }
  ReleaseViews(op);
  delete op;
}

// On the JS thread: report (id, status, index) to the JS dispatcher.
void CallJs(napi_env env, napi_value js_cb, void* /*ctx*/, void* data) {
  Op* op = static_cast<Op*>(data);
  AsyncState* st = op->state;
  if (env == nullptr || js_cb == nullptr) {  // env torn down: nobody to tell
    Drop(op);
    return;
  }
  st->ops.erase(op->id);
  if (--st->pending == 0 && st->tsfn) napi_unref_threadsafe_function(env, st->tsfn);
  napi_value argv[3];
  napi_create_uint32(env, op->id, &argv[0]);
  napi_create_int32(env, op->status, &argv[1]);
  napi_create_uint32(env, op->index, &argv[2]);
  ReleaseViews(op);
  delete op;
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, js_cb, 3, argv, nullptr);
}

// On a waiter thread.
void Done(AsyncOp* a) {
  Op* op = static_cast<Op*>(a);
  AsyncState* st = op->state;
  std::unique_lock<std::mutex> g(st->mu);
  if (st->alive && napi_call_threadsafe_function(st->tsfn, op, napi_tsfn_nonblocking) == napi_ok) return;
  g.unlock();
  Drop(op);
}

// The JS thread is ending: cancel its ops; their completions are dropped
// (Drop undoes what they acquired). st stays allocated: ops in flight use it.
void Cleanup(void* p) {
  AsyncState* st = static_cast<AsyncState*>(p);
  st->closing = true;
  for (auto& kv : st->ops) async_cancel(kv.second);
  {
    std::lock_guard<std::mutex> g(st->mu);
    st->alive = false;
  }
  if (st->tsfn) napi_release_threadsafe_function(st->tsfn, napi_tsfn_abort);
}

// asyncInit(callback(id, status, index))
Napi::Value AsyncInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (StateOf(env)) return env.Undefined();
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(env, "asyncInit: callback expected").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  AsyncState* st = new AsyncState();
  napi_value name;
  napi_create_string_utf8(env, "forksafe.waiter", NAPI_AUTO_LENGTH, &name);
  napi_status s = napi_create_threadsafe_function(env, info[0], nullptr, name, 0, 1, nullptr,
                                                  nullptr, nullptr, CallJs, &st->tsfn);
  if (s != napi_ok) {
    delete st;
    Napi::Error::New(env, "forksafe: cannot create the waiter's thread-safe function")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  napi_unref_threadsafe_function(env, st->tsfn);
  GetEnvData(env)->async = st;
  napi_add_env_cleanup_hook(env, Cleanup, st);
  return env.Undefined();
}

bool ArenaArg(const Napi::CallbackInfo& info, size_t i, uint8_t** base, size_t* len) {
  if (!info[i].IsArrayBuffer()) return false;
  Napi::ArrayBuffer ab = info[i].As<Napi::ArrayBuffer>();
  *base = static_cast<uint8_t*>(ab.Data());
  *len = ab.ByteLength();
  return *base != nullptr;
}

// The slot at off, validated like the sync bindings do.
uint8_t* SlotAt(uint8_t* base, size_t len, double offd, uint32_t kind, size_t min_size) {
  if (len != kArenaSize) return nullptr;
  const SegmentHeader* h = reinterpret_cast<const SegmentHeader*>(base);
  if (h->magic != kMagic || h->kind != kSegArena) return nullptr;
  if (!(offd >= static_cast<double>(kArenaDataOffset)) || offd >= static_cast<double>(kArenaSize))
    return nullptr;
  uint64_t off = static_cast<uint64_t>(offd);
  if ((off - kArenaDataOffset) % kUnit != 0 || off + min_size > len) return nullptr;
  SlotHeader* s = reinterpret_cast<SlotHeader*>(base + off);
  uint32_t k = __atomic_load_n(&s->kind, __ATOMIC_SEQ_CST);
  uint32_t units = __atomic_load_n(&s->units, __ATOMIC_SEQ_CST);
  bool kind_ok = k == kind || (kind == kPrimLock && k == kPrimRLock);
  if (!kind_ok || units == 0 || off + static_cast<uint64_t>(units) * kUnit > len) return nullptr;
  return base + off;
}

// The buffer an op will read must lie inside the segment whose view the op
// holds: otherwise the op could outlive the memory it points into.
bool InSegment(uint32_t seg, const void* p, size_t len) {
  SegmentInfo si;
  if (segment_info(seg, &si) != kOk) return false;
  const uint8_t* b = static_cast<const uint8_t*>(p);
  return b >= si.base && len <= si.size && b + len <= si.base + si.size;
}

// Registers and submits op; returns its id (> 0) or throws.
Napi::Value Submit(Napi::Env env, Op* op, double timeout_ms) {
  AsyncState* st = StateOf(env);
  EnvData* d = GetEnvData(env);
  if (!st || !d || st->closing) {
    delete op;
    Napi::Error::New(env, "forksafe: async waits are not initialised in this thread").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (segment_retain(op->seg) != kOk) {
    delete op;
    return Napi::Number::New(env, -kBadHandle);
  }
  // Checked with the view held, so the segment cannot be unmapped meanwhile.
  bool inside = op->kind == kAsyncWord ? InSegment(op->seg, op->word, 4)
                                       : InSegment(op->seg, op->base, kArenaSize);
  if (inside && op->kind == kAsyncCond) inside = InSegment(op->seg2 ? op->seg2 : op->seg, op->lock_base, kArenaSize);
  if (!inside) {
    segment_release(op->seg);
    delete op;
    return Napi::Number::New(env, -kBadHandle);
  }
  if (op->seg2 && segment_retain(op->seg2) != kOk) {
    segment_release(op->seg);
    delete op;
    return Napi::Number::New(env, -kBadHandle);
  }
  op->state = st;
  op->done = Done;
  timeout_ms = normalize_timeout_ms(timeout_ms);  // NaN or huge (a Barrier's default comes from shared memory)
  op->deadline = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
  op->id = st->next_id++;
  if (st->next_id == 0) st->next_id = 1;
  if (st->pending++ == 0) napi_ref_threadsafe_function(env, st->tsfn);
  st->ops[op->id] = op;
  int r = async_submit(op);
  if (r < 0) {
    st->ops.erase(op->id);
    if (--st->pending == 0) napi_unref_threadsafe_function(env, st->tsfn);
    ReleaseViews(op);
    delete op;
    ThrowSystemError(env, r, "pthread_create");
    return env.Undefined();
  }
  return Napi::Number::New(env, op->id);
}

uint32_t OwnToken(const Napi::CallbackInfo& info, size_t i) {
  EnvData* d = GetEnvData(info.Env());
  uint32_t t = ArgU32(info, i);
  return (d && t == d->token) ? t : 0;
}

// asyncLock(seg, buf, off, token, recursive, timeout) -> id | -status
Napi::Value AsyncLock(const Napi::CallbackInfo& info) {
  uint8_t* base;
  size_t len;
  if (!ArenaArg(info, 1, &base, &len)) return Napi::Number::New(info.Env(), -kBadHandle);
  uint8_t* slot = SlotAt(base, len, ArgF64(info, 2, -1), kPrimLock, sizeof(LockSlot));
  uint32_t t = OwnToken(info, 3);
  if (!slot || !t) return Napi::Number::New(info.Env(), -kBadHandle);
  Op* op = new Op();
  op->kind = kAsyncLock;
  op->seg = ArgU32(info, 0);
  op->base = base;
  op->slot = slot;
  op->token = t;
  op->recursive = ArgBool(info, 4);
  return Submit(info.Env(), op, ArgF64(info, 5, -1));
}

// Submits an Event or Semaphore wait. Both count their sleepers in the
// `waiters` field, which set()/release() read to decide whether to wake: the
// op is counted before it is submitted, and uncounted if submission fails
// (the waiter thread uncounts it when it completes).
Napi::Value SubmitCounted(const Napi::CallbackInfo& info, uint32_t kind, uint8_t* base, uint8_t* slot,
                          uint32_t* waiters) {
  __atomic_fetch_add(waiters, 1u, __ATOMIC_SEQ_CST);
  Op* op = new Op();
  op->kind = kind;
  op->seg = ArgU32(info, 0);
  op->base = base;
  op->slot = slot;
  Napi::Value r = Submit(info.Env(), op, ArgF64(info, 3, -1));
  if (!r.IsNumber() || r.As<Napi::Number>().Int32Value() < 0) __atomic_fetch_sub(waiters, 1u, __ATOMIC_SEQ_CST);
  return r;
}

// asyncSem(seg, buf, off, timeout) -> id
Napi::Value AsyncSem(const Napi::CallbackInfo& info) {
  uint8_t* base;
  size_t len;
  if (!ArenaArg(info, 1, &base, &len)) return Napi::Number::New(info.Env(), -kBadHandle);
  uint8_t* slot = SlotAt(base, len, ArgF64(info, 2, -1), kPrimSemaphore, sizeof(SemSlot));
  if (!slot) return Napi::Number::New(info.Env(), -kBadHandle);
  SemSlot* s = reinterpret_cast<SemSlot*>(slot);
  if ((s->flags & kSemUndo) && slot + sem_slot_units(true) * kUnit > base + kArenaSize)
    return Napi::Number::New(info.Env(), -kBadHandle);
  return SubmitCounted(info, kAsyncSem, base, slot, &s->waiters);
}

// asyncEvent(seg, buf, off, timeout) -> id
Napi::Value AsyncEvent(const Napi::CallbackInfo& info) {
  uint8_t* base;
  size_t len;
  if (!ArenaArg(info, 1, &base, &len)) return Napi::Number::New(info.Env(), -kBadHandle);
  uint8_t* slot = SlotAt(base, len, ArgF64(info, 2, -1), kPrimEvent, sizeof(EventSlot));
  if (!slot) return Napi::Number::New(info.Env(), -kBadHandle);
  return SubmitCounted(info, kAsyncEvent, base, slot, &reinterpret_cast<EventSlot*>(slot)->waiters);
}

// asyncWord(seg, dataBuf, byteOffset, value, timeout) -> id
Napi::Value AsyncWord(const Napi::CallbackInfo& info) {
  if (!info[1].IsArrayBuffer()) return Napi::Number::New(info.Env(), -kBadHandle);
  Napi::ArrayBuffer ab = info[1].As<Napi::ArrayBuffer>();
  double off = ArgF64(info, 2, -1);
  if (!ab.Data() || !(off >= 0 && off + 4 <= static_cast<double>(ab.ByteLength())) ||
      static_cast<uint64_t>(off) % 4 != 0) {
    return Napi::Number::New(info.Env(), -kBadHandle);
  }
  uint32_t* w = reinterpret_cast<uint32_t*>(static_cast<uint8_t*>(ab.Data()) + static_cast<uint64_t>(off));
  // The caller compared the value already ('not-equal'); a change from here
  // on resolves the wait with 'ok', as a notify would.
  uint32_t expected = static_cast<uint32_t>(ArgI32(info, 3));
  Op* op = new Op();
  op->kind = kAsyncWord;
  op->seg = ArgU32(info, 0);
  op->word = w;
  op->expected = expected;
  return Submit(info.Env(), op, ArgF64(info, 4, -1));
}

// asyncCond(lockSeg, lockBuf, lockOff, recursive, condSeg, condBuf, condOff, token, timeout)
// -> id | -status. Registers as a waiter and releases the lock now (on the
// JS thread, which holds it), then the waiter thread waits and re-acquires.
Napi::Value AsyncCond(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t *lbase, *cbase;
  size_t llen, clen;
  if (!ArenaArg(info, 1, &lbase, &llen) || !ArenaArg(info, 5, &cbase, &clen))
    return Napi::Number::New(env, -kBadHandle);
  uint8_t* lslot = SlotAt(lbase, llen, ArgF64(info, 2, -1), kPrimLock, sizeof(LockSlot));
  uint8_t* cslot = SlotAt(cbase, clen, ArgF64(info, 6, -1), kPrimCondition, sizeof(CondSlot));
  uint32_t t = OwnToken(info, 7);
  if (!lslot || !cslot || !t) return Napi::Number::New(env, -kBadHandle);
  if (!InSegment(ArgU32(info, 0), lbase, kArenaSize) || !InSegment(ArgU32(info, 4), cbase, kArenaSize))
    return Napi::Number::New(env, -kBadHandle);
  LockSlot* l = reinterpret_cast<LockSlot*>(lslot);
  CondSlot* c = reinterpret_cast<CondSlot*>(cslot);
  if ((__atomic_load_n(&l->word, __ATOMIC_SEQ_CST) & kTokenMask) != t) return Napi::Number::New(env, -kNotOwner);
  uint32_t cseg = ArgU32(info, 4), lseg = ArgU32(info, 0);
  Op* op = new Op();
  op->kind = kAsyncCond;
  op->seg = cseg;
  op->seg2 = lseg != cseg ? lseg : 0;  // the op holds a view of both mappings
  op->slot = cslot;
  op->base = cbase;
  op->lock_slot = lslot;
  op->lock_base = lbase;
  op->token = t;
  op->recursive = ArgBool(info, 3);
  op->saved = __atomic_load_n(&l->count, __ATOMIC_SEQ_CST);
  __atomic_fetch_add(&c->wt, static_cast<uint64_t>(1) << 32, __ATOMIC_SEQ_CST);
  op->expected = __atomic_load_n(&c->seq, __ATOMIC_SEQ_CST);
  __atomic_store_n(&l->count, 1u, __ATOMIC_SEQ_CST);
  lock_release(l, t, false);
  return Submit(env, op, ArgF64(info, 8, -1));
}

// asyncBarrier(seg, buf, off, token, timeout) -> [status, index, id]
Napi::Value AsyncBarrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* base;
  size_t len;
  Napi::Array out = Napi::Array::New(env, 3);
  out.Set(0u, Napi::Number::New(env, kBadHandle));
  out.Set(1u, Napi::Number::New(env, 0));
  out.Set(2u, Napi::Number::New(env, 0));
  if (!ArenaArg(info, 1, &base, &len)) return out;
  uint8_t* slot = SlotAt(base, len, ArgF64(info, 2, -1), kPrimBarrier, sizeof(BarrierSlot));
  uint32_t t = OwnToken(info, 3);
  if (!slot || !t) return out;
  if (!InSegment(ArgU32(info, 0), base, kArenaSize)) return out;
  BarrierSlot* b = reinterpret_cast<BarrierSlot*>(slot);
  uint32_t parties = __atomic_load_n(&b->parties, __ATOMIC_SEQ_CST);
  if (parties == 0 || parties > kMaxParties || b->h.units < barrier_slot_units(parties)) return out;
  uint32_t index = 0, gen = 0;
  int r = barrier_arrive(base, b, t, &index, &gen);
  out.Set(1u, Napi::Number::New(env, index));
  if (r != kTimedOut) {
    out.Set(0u, Napi::Number::New(env, r));
    return out;
  }
  Op* op = new Op();
  op->kind = kAsyncBarrier;
  op->seg = ArgU32(info, 0);
  op->base = base;
  op->slot = slot;
  op->token = t;
  op->expected = gen;
  op->index = index;
  Napi::Value id = Submit(env, op, ArgF64(info, 4, -1));
  out.Set(0u, Napi::Number::New(env, kTimedOut));
  out.Set(2u, id);
  return out;
}

// asyncNotifyLocal(dataBuf, byteOffset, count) -> waits of this process notified
Napi::Value AsyncNotifyLocal(const Napi::CallbackInfo& info) {
  if (!info[0].IsArrayBuffer()) return Napi::Number::New(info.Env(), 0);
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  double off = ArgF64(info, 1, -1);
  if (!ab.Data() || !(off >= 0 && off + 4 <= static_cast<double>(ab.ByteLength())) ||
      static_cast<uint64_t>(off) % 4 != 0) {
    return Napi::Number::New(info.Env(), 0);
  }
  double n = ArgF64(info, 2, 0);
  if (!(n >= 1)) return Napi::Number::New(info.Env(), 0);
  int k = n >= INT_MAX ? INT_MAX : static_cast<int>(n);
  uint32_t* w = reinterpret_cast<uint32_t*>(static_cast<uint8_t*>(ab.Data()) + static_cast<uint64_t>(off));
  return Napi::Number::New(info.Env(), async_notify_local(w, k));
}

Napi::Value AsyncCancel(const Napi::CallbackInfo& info) {
  AsyncState* st = StateOf(info.Env());
  if (!st) return info.Env().Undefined();
  auto it = st->ops.find(ArgU32(info, 0));
  if (it != st->ops.end()) async_cancel(it->second);
  return info.Env().Undefined();
}

// Test only: a plain native fork() with the waiter threads parked around it.
Napi::Value TestFork(const Napi::CallbackInfo& info) {
  int r = async_test_fork();
  if (r < 0) {
    ThrowSystemError(info.Env(), r, "fork");
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), r);
}

Napi::Value AsyncStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t threads = 0, pending = 0;
  async_stats(&threads, &pending);
  Napi::Object o = Napi::Object::New(env);
  o.Set("threads", Napi::Number::New(env, threads));
  o.Set("pending", Napi::Number::New(env, pending));
  AsyncState* st = StateOf(env);
  o.Set("threadPending", Napi::Number::New(env, st ? st->pending : 0));
  return o;
}

// Test and bench knob, not API: _deathwatch({ enabled?, sliceMs?, lingerMs? })
// switches the death watcher off/on (off = slices only), changes the liveness
// slice (to show that the watcher alone wakes a waiter) and how long an idle
// pidfd is kept; returns the watcher's counters.
Napi::Value DeathwatchKnob(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    // Getters may throw (a forged options object): stop at the first.
    Napi::Value v = o.Get("enabled");
    if (env.IsExceptionPending()) return env.Undefined();
    if (v.IsBoolean()) deathwatch_set_enabled(v.As<Napi::Boolean>().Value());
    v = o.Get("sliceMs");
    if (env.IsExceptionPending()) return env.Undefined();
    // 1 ms .. 1 h: anything else (NaN, 0, huge) is ignored.
    if (v.IsNumber()) {
      double ms = v.As<Napi::Number>().DoubleValue();
      if (ms >= 1 && ms <= 3.6e6) set_liveness_slice_ms(ms);
    }
    v = o.Get("lingerMs");
    if (env.IsExceptionPending()) return env.Undefined();
    if (v.IsNumber()) {
      double ms = v.As<Napi::Number>().DoubleValue();
      if (ms >= 0 && ms <= 3.6e6) deathwatch_set_linger_ms(ms);
    }
  }
  bool enabled = deathwatch_enabled();  // probes the kernel once
  DeathWatchStats st;
  deathwatch_stats(&st);
  Napi::Object r = Napi::Object::New(env);
  r.Set("supported", Napi::Number::New(env, st.supported));
  r.Set("enabled", Napi::Boolean::New(env, enabled));
  r.Set("running", Napi::Boolean::New(env, st.running != 0));
  r.Set("wakes", Napi::Number::New(env, static_cast<double>(st.wakes)));
  r.Set("deaths", Napi::Number::New(env, static_cast<double>(st.deaths)));
  r.Set("deadAtAdd", Napi::Number::New(env, static_cast<double>(st.dead_at_add)));
  r.Set("adds", Napi::Number::New(env, static_cast<double>(st.adds)));
  r.Set("pidfds", Napi::Number::New(env, st.pidfds));
  r.Set("watched", Napi::Number::New(env, st.watched));
  r.Set("sliceMs", Napi::Number::New(env, liveness_slice_ms()));
  return r;
}

}  // namespace

// In a fork()ed child: the parent's pending ops are the parent's (their
// waiter threads do not exist here). Forget them; lib/core/async.ts rejects their
// promises with ContextError.
void AsyncForgetAfterFork(Napi::Env env) {
  AsyncState* st = StateOf(env);
  if (!st) return;
  st->ops.clear();
  if (st->pending > 0 && st->tsfn) napi_unref_threadsafe_function(env, st->tsfn);
  st->pending = 0;
}

void RegisterWaiter(Napi::Env env, Napi::Object exports) {
  exports.Set("asyncInit", Napi::Function::New(env, AsyncInit, "asyncInit"));
  exports.Set("asyncLock", Napi::Function::New(env, AsyncLock, "asyncLock"));
  exports.Set("asyncSem", Napi::Function::New(env, AsyncSem, "asyncSem"));
  exports.Set("asyncEvent", Napi::Function::New(env, AsyncEvent, "asyncEvent"));
  exports.Set("asyncWord", Napi::Function::New(env, AsyncWord, "asyncWord"));
  exports.Set("asyncCond", Napi::Function::New(env, AsyncCond, "asyncCond"));
  exports.Set("asyncBarrier", Napi::Function::New(env, AsyncBarrier, "asyncBarrier"));
  exports.Set("asyncCancel", Napi::Function::New(env, AsyncCancel, "asyncCancel"));
  exports.Set("asyncNotifyLocal", Napi::Function::New(env, AsyncNotifyLocal, "asyncNotifyLocal"));
  exports.Set("asyncStats", Napi::Function::New(env, AsyncStats, "asyncStats"));
  exports.Set("_testForkWaiters", Napi::Function::New(env, TestFork, "_testForkWaiters"));
  exports.Set("_deathwatch", Napi::Function::New(env, DeathwatchKnob, "_deathwatch"));
}

}  // namespace forksafe
