// Bindings for segments, arenas and slots: allocation, handles, attach,
// release, and the per-thread token. Slow paths only; the JS layer reads and
// writes the slots directly through the ArrayBuffer returned by buffer().
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <unordered_map>

#include "core/segment.h"
#include "core/sync.h"
#include "util.h"

namespace forksafe {

namespace {

uint64_t SlotKey(uint32_t seg, uint64_t off) { return (static_cast<uint64_t>(seg) << 32) | off; }

using EnvState = EnvData;

EnvState* State(Napi::Env env) { return GetEnvData(env); }

void NoteSlot(Napi::Env env, uint32_t seg, uint64_t off, int64_t delta) {
  EnvState* s = State(env);
  if (!s) return;
  int64_t& v = s->slots[SlotKey(seg, off)];
  v += delta;
  if (v <= 0) s->slots.erase(SlotKey(seg, off));
}

void AbandonHeld(uint8_t* base, SlotHeader* slot, void* ctx) {
  uint32_t token = *static_cast<uint32_t*>(ctx);
  uint32_t kind = __atomic_load_n(&slot->kind, __ATOMIC_SEQ_CST);
  if (kind == kPrimLock || kind == kPrimRLock) {
    lock_abandon(reinterpret_cast<LockSlot*>(slot), token);
  } else if (kind == kPrimBarrier) {
    BarrierSlot* b = reinterpret_cast<BarrierSlot*>(slot);
    if ((__atomic_load_n(&b->ilock, __ATOMIC_SEQ_CST) & kTokenMask) == token) {
      __atomic_store_n(&b->broken, 1u, __ATOMIC_SEQ_CST);
      uint32_t prev = __atomic_exchange_n(&b->ilock, 0u, __ATOMIC_SEQ_CST);
      if (prev & kWaitersBit) futex_wake(&b->ilock, 1);
      futex_wake(&b->gen, INT32_MAX);
    }
  }
  (void)base;
}

}  // namespace

// The process is about to exit (a spawn child's bootstrap, a fork()ed child's
// _exit): locks this thread holds are abandoned and the slot references it
// holds are dropped now, since Node runs no cleanup hooks on process.exit().
// Mappings stay: the process is ending anyway.
void ReleaseThreadRefs(EnvData* s) {
  uint32_t token = s->token;
  for_each_slot(AbandonHeld, &token);
  for (auto& kv : s->slots) {
    uint32_t seg = static_cast<uint32_t>(kv.first >> 32);
    uint64_t off = kv.first & 0xFFFFFFFFu;
    for (int64_t i = 0; i < kv.second; i++) slot_unref(seg, off);
  }
  s->slots.clear();
}

namespace {

// A JS thread is going away (worker terminated, or process teardown): locks
// it still holds are abandoned (next acquirer: OwnerDiedError), references
// and views it never gave back are given back, and its index is freed.
void EnvCleanup(EnvState* s) {
  ReleaseThreadRefs(s);
  for (auto& kv : s->views) {
    for (int64_t i = 0; i < kv.second; i++) segment_release(kv.first);
  }
  for (auto& kv : s->buffers) kv.second->Release();
  // A worker_thread's forkserver would die with the thread (PR_SET_PDEATHSIG)
  // and stay a zombie: its reaper was this thread's event loop, now gone.
  for (int fd : s->owned_children) {
    pidfd_kill_reap(fd);
    close_fd(fd);
  }
  s->owned_children.clear();
  thread_free(s->thread_index);
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnvState* s = State(env);
  if (!s) {
    uint32_t index = 0;
    if (thread_alloc(&index) != kOk) {
      Napi::Error::New(env, "forksafe: more than 511 JS threads in one process")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    s = new EnvState();
    s->thread_index = index;
    s->token = make_token(index);
    env.SetInstanceData<EnvData>(s);  // deleted at env teardown, after the hook
    napi_add_env_cleanup_hook(env, [](void* p) { EnvCleanup(static_cast<EnvState*>(p)); }, s);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("token", Napi::Number::New(env, s->token));
  o.Set("threadIndex", Napi::Number::New(env, s->thread_index));
  o.Set("pid", Napi::Number::New(env, self_pid()));
  o.Set("cpus", Napi::Number::New(env, online_cpus()));
  return o;
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ctx = ArgU32(info, 0), kind = ArgU32(info, 1), units = ArgU32(info, 2);
  uint32_t seg = 0, gen = 0;
  uint64_t off = 0;
  int r = slot_alloc(ctx, kind, units, &seg, &off, &gen);
  if (r < 0) {
    ThrowSystemError(env, r, "mmap");
    return env.Undefined();
  }
  NoteSlot(env, seg, off, 1);
  NoteView(env, seg, 1);
  Napi::Array a = Napi::Array::New(env, 3);
  a.Set(0u, Napi::Number::New(env, seg));
  a.Set(1u, Napi::Number::New(env, static_cast<double>(off)));
  a.Set(2u, Napi::Number::New(env, gen));
  return a;
}

Napi::Value SlotRef(const Napi::CallbackInfo& info) {
  uint32_t seg = ArgU32(info, 0);
  uint64_t off = ArgU32(info, 1);
  int r = slot_ref(seg, off, ArgU32(info, 2), ArgU32(info, 3));
  if (r == kOk) NoteSlot(info.Env(), seg, off, 1);
  return Napi::Number::New(info.Env(), r);
}

Napi::Value SlotUnref(const Napi::CallbackInfo& info) {
  uint32_t seg = ArgU32(info, 0);
  uint64_t off = ArgU32(info, 1);
  EnvState* s = State(info.Env());
  if (s && s->slots.find(SlotKey(seg, off)) == s->slots.end()) {
    return Napi::Number::New(info.Env(), kBadHandle);  // not ours to drop
  }
  uint32_t gen = ArgU32(info, 2);
  int r = slot_unref(seg, off, &gen);
  NoteSlot(info.Env(), seg, off, -1);
  return Napi::Number::New(info.Env(), r);
}

Napi::Value ResultPair(Napi::Env env, int status, uint32_t seg) {
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, status));
  a.Set(1u, Napi::Number::New(env, seg));
  return a;
}

// open(idHex, kind, ctx, pid, fd, dev, ino, size, name) -> [status, seg]
// dev/ino/size arrive as decimal strings (64-bit).
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SegmentRef ref;
  memset(&ref, 0, sizeof(ref));
  if (info.Length() < 9 || !info[0].IsString() || !info[5].IsString() || !info[6].IsString() ||
      !info[7].IsString()) {
    return ResultPair(env, kBadHandle, 0);
  }
  if (!ParseSegmentId(info[0].As<Napi::String>().Utf8Value(), ref.id)) return ResultPair(env, kBadHandle, 0);
  ref.kind = ArgU32(info, 1);
  ref.ctx = ArgU32(info, 2);
  ref.pid = ArgU32(info, 3);
  ref.fd = ArgI32(info, 4);
  auto parse_u64 = [](const std::string& s, uint64_t* out) {
    if (s.empty() || s.size() > 20) return false;
    uint64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    *out = v;
    return true;
  };
  if (!parse_u64(info[5].As<Napi::String>().Utf8Value(), &ref.dev) ||
      !parse_u64(info[6].As<Napi::String>().Utf8Value(), &ref.ino) ||
      !parse_u64(info[7].As<Napi::String>().Utf8Value(), &ref.size)) {
    return ResultPair(env, kBadHandle, 0);
  }
  std::string name;
  if (info[8].IsString()) name = info[8].As<Napi::String>().Utf8Value();
  if (name.size() >= 48) return ResultPair(env, kBadHandle, 0);
  ref.name = name.c_str();
  uint32_t seg = 0;
  int r = segment_open(ref, &seg);
  if (r < 0) {
    ThrowSystemError(env, r, "open");
    return env.Undefined();
  }
  if (r == kOk) NoteView(env, seg, 1);
  return ResultPair(env, r, seg);
}

Napi::Value AdoptFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t seg = 0;
  double fdd = ArgF64(info, 0, -1);
  if (!(fdd >= 0 && fdd <= 2147483647.0) || fdd != static_cast<double>(static_cast<int>(fdd)))
    return ResultPair(env, kBadHandle, 0);
  int fd = static_cast<int>(fdd);
  int r = segment_adopt_fd(fd, &seg);
  if (r < 0) {
    ThrowSystemError(env, r, "mmap");
    return env.Undefined();
  }
  if (r == kOk) NoteView(env, seg, 1);
  return ResultPair(env, r, seg);
}

Napi::Value SegRetain(const Napi::CallbackInfo& info) {
  uint32_t seg = ArgU32(info, 0);
  int r = segment_retain(seg);
  if (r == kOk) NoteView(info.Env(), seg, 1);
  return Napi::Number::New(info.Env(), r);
}

Napi::Value SegRelease(const Napi::CallbackInfo& info) {
  uint32_t seg = ArgU32(info, 0);
  EnvState* s = State(info.Env());
  if (s && s->views.find(seg) == s->views.end()) return Napi::Number::New(info.Env(), kBadHandle);
  int r = segment_release(seg);
  NoteView(info.Env(), seg, -1);
  return Napi::Number::New(info.Env(), r);
}

// buffer(seg, dataOnly) -> [ArrayBuffer, bufferId]: an ArrayBuffer over the
// mapping (the whole segment, or a SharedMemory's user bytes) that holds one
// view of the segment until dropBuffer(ab, id) detaches it, or it is
// collected, or its thread ends.
Napi::Value Buffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t seg = ArgU32(info, 0);
  SegmentInfo si;
  EnvState* s = State(env);
  if (!s || segment_info(seg, &si) != kOk || segment_retain(seg) != kOk) {
    Napi::Error::New(env, "forksafe: segment is not mapped").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint8_t* p = si.base;
  size_t len = si.size;
  if (ArgBool(info, 1)) {
    // This process's checked copy (segment.h), never the header in the
    // mapping: another process may have rewritten that since.
    p = si.base + si.data_offset;
    len = si.data_size;
  }
  auto view = std::make_shared<BufferView>();
  view->seg = seg;
  view->data = p;
  view->len = len;
  auto* hint = new std::shared_ptr<BufferView>(view);
  napi_value ab;
  napi_status st = napi_create_external_arraybuffer(
      env, p, len,
      [](napi_env, void*, void* h) {
        auto* sp = static_cast<std::shared_ptr<BufferView>*>(h);
        (*sp)->Release();
        delete sp;
      },
      hint, &ab);
  if (st != napi_ok) {
    delete hint;
    view->Release();
    Napi::Error::New(env, "forksafe: cannot create an external ArrayBuffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t id = s->next_buffer++;
  s->buffers[id] = view;
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Value(env, ab));
  a.Set(1u, Napi::Number::New(env, id));
  return a;
}

// dropBuffer(ab, id): detach (typed arrays over it become empty, so nothing
// can touch the mapping afterwards) and give the view back.
Napi::Value DropBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnvState* s = State(env);
  uint32_t id = ArgU32(info, 1);
  if (!s || !info[0].IsArrayBuffer()) return Napi::Number::New(env, kBadHandle);
  auto it = s->buffers.find(id);
  if (it == s->buffers.end()) return Napi::Number::New(env, kBadHandle);
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.Data() != it->second->data || ab.ByteLength() != it->second->len) {
    return Napi::Number::New(env, kBadHandle);  // not the buffer registered under this id
  }
  napi_detach_arraybuffer(env, info[0]);
  it->second->Release();
  s->buffers.erase(it);
  return Napi::Number::New(env, kOk);
}

Napi::Value SegInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SegmentInfo si;
  if (segment_info(ArgU32(info, 0), &si) != kOk) return env.Null();
  char hex[33];
  for (int i = 0; i < 16; i++) snprintf(hex + i * 2, 3, "%02x", si.id[i]);
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", Napi::String::New(env, hex));
  o.Set("kind", Napi::Number::New(env, si.kind));
  o.Set("ctx", Napi::Number::New(env, si.ctx));
  o.Set("pid", Napi::Number::New(env, self_pid()));
  o.Set("fd", Napi::Number::New(env, si.fd));
  o.Set("dev", Napi::String::New(env, std::to_string(si.fid.dev)));
  o.Set("ino", Napi::String::New(env, std::to_string(si.fid.ino)));
  o.Set("size", Napi::String::New(env, std::to_string(si.size)));
  o.Set("name", Napi::String::New(env, si.name));
  o.Set("dataSize", Napi::Number::New(env, static_cast<double>(si.data_size)));
  o.Set("persistent", Napi::Boolean::New(env, (si.flags & kSegPersistent) != 0));
  return o;
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RegistryStats st;
  registry_stats(&st);
  Napi::Object o = Napi::Object::New(env);
  o.Set("mapped", Napi::Number::New(env, st.mapped));
  o.Set("arenas", Napi::Number::New(env, st.arenas));
  o.Set("shm", Napi::Number::New(env, st.shm));
  o.Set("views", Napi::Number::New(env, static_cast<double>(st.views)));
  return o;
}

Napi::Value ReleaseRefs(const Napi::CallbackInfo& info) {
  EnvState* s = State(info.Env());
  if (s) ReleaseThreadRefs(s);
  return info.Env().Undefined();
}

Napi::Value PidAlive(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), process_alive(ArgU32(info, 0), 0) == 1);
}

// ownerAlive(token, startLo): whether the JS thread behind a token (layout.h
// format) is alive: one of ours by the thread table, another process's by its
// pid and the low 32 bits of its start time (0: not recorded, existence only).
// For owner words kept outside arenas (lib/ipc's rings), which have no
// participant table.
Napi::Value OwnerAlive(const Napi::CallbackInfo& info) {
  uint32_t token = ArgU32(info, 0);
  uint32_t start_lo = ArgU32(info, 1);
  uint32_t pid = token_pid(token);
  bool alive;
  if (pid == 0) {
    alive = false;
  } else if (pid == self_pid()) {
    alive = thread_alive(token_thread(token));
  } else {
    uint64_t start = 0;
    char state = '?';
    int r = proc_stat(pid, &start, &state);
    if (r == -ESRCH) alive = false;
    else if (r < 0) alive = pid_exists(pid) == 1;
    else if (state == 'Z' || state == 'X' || state == 'x') alive = false;
    else alive = start_lo == 0 || static_cast<uint32_t>(start) == start_lo;
  }
  return Napi::Boolean::New(info.Env(), alive);
}

// selfStart(): the low 32 bits of this process's start time (0 never: 1 then).
Napi::Value SelfStart(const Napi::CallbackInfo& info) {
  uint32_t lo = static_cast<uint32_t>(self_start_time());
  return Napi::Number::New(info.Env(), lo == 0 ? 1 : lo);
}

}  // namespace

void RegisterArena(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("alloc", Napi::Function::New(env, Alloc, "alloc"));
  exports.Set("slotRef", Napi::Function::New(env, SlotRef, "slotRef"));
  exports.Set("slotUnref", Napi::Function::New(env, SlotUnref, "slotUnref"));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("adoptFd", Napi::Function::New(env, AdoptFd, "adoptFd"));
  exports.Set("segRetain", Napi::Function::New(env, SegRetain, "segRetain"));
  exports.Set("segRelease", Napi::Function::New(env, SegRelease, "segRelease"));
  exports.Set("buffer", Napi::Function::New(env, Buffer, "buffer"));
  exports.Set("dropBuffer", Napi::Function::New(env, DropBuffer, "dropBuffer"));
  exports.Set("segInfo", Napi::Function::New(env, SegInfo, "segInfo"));
  exports.Set("stats", Napi::Function::New(env, Stats, "stats"));
  exports.Set("releaseThreadRefs", Napi::Function::New(env, ReleaseRefs, "releaseThreadRefs"));
  exports.Set("pidAlive", Napi::Function::New(env, PidAlive, "pidAlive"));
  exports.Set("ownerAlive", Napi::Function::New(env, OwnerAlive, "ownerAlive"));
  exports.Set("selfStart", Napi::Function::New(env, SelfStart, "selfStart"));
}

}  // namespace forksafe
