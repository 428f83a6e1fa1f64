// Helpers shared by the bindings: system errors, argument access, per-env data.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace forksafe {

// Throws an Error shaped like Node's system errors: code (errno name), errno
// (negative, as Node does), syscall, and the strerror message.
void ThrowSystemError(Napi::Env env, int neg_errno, const char* syscall);
const char* ErrnoName(int err);

// Per JS thread (napi_env) state. Views this env holds on segments are
// counted here too, so that a worker_thread that ends without closing its
// objects still gives its mappings back (cleanup hook).
// One view of a segment held by an external ArrayBuffer. Released exactly
// once: by dropBuffer() (which also detaches it), by the buffer's GC
// finalizer, or by the thread's cleanup hook, whichever comes first.
struct BufferView {
  uint32_t seg;
  const void* data = nullptr;  // what the ArrayBuffer covers: dropBuffer checks it
  size_t len = 0;
  std::atomic<bool> released{false};
  void Release();
};

struct EnvData {
  uint32_t next_buffer = 1;
  std::unordered_map<uint32_t, std::shared_ptr<BufferView>> buffers;
  uint32_t thread_index = 0;
  uint32_t token = 0;
  std::unordered_map<uint32_t, int64_t> views;  // seg -> views held
  std::unordered_map<uint64_t, int64_t> slots;  // seg << 32 | off -> references held
  void* async = nullptr;  // waiter.cc's per-thread state
  // pidfds of child processes this JS thread started and must not outlive it
  // (the forkserver): killed and reaped when the thread goes away.
  std::vector<int> owned_children;
};
EnvData* GetEnvData(Napi::Env env);
void ReleaseThreadRefs(EnvData* d);  // arena.cc
void NoteView(Napi::Env env, uint32_t seg, int64_t delta);

inline uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i) {
  return info[i].IsNumber() ? info[i].As<Napi::Number>().Uint32Value() : 0;
}
inline int32_t ArgI32(const Napi::CallbackInfo& info, size_t i) {
  return info[i].IsNumber() ? info[i].As<Napi::Number>().Int32Value() : 0;
}
inline double ArgF64(const Napi::CallbackInfo& info, size_t i, double dflt) {
  return info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : dflt;
}
inline bool ArgBool(const Napi::CallbackInfo& info, size_t i) {
  return info[i].IsBoolean() && info[i].As<Napi::Boolean>().Value();
}
// A timeout argument in ms. Negatives and values at or beyond what the kernel
// can express (kForeverMs, ~292 years) mean forever (-1), as lib/core/validate.ts's
// parseTimeout() maps them before they get here. NaN (which parseTimeout
// refuses, so it can only be garbage from shared memory: a Barrier's default
// timeout another process overwrote) means try once, as in the core: a wait
// that garbage made endless would hang its caller.
double TimeoutArg(const Napi::CallbackInfo& info, size_t i);
// A segment id as handles carry it (32 lowercase hex digits) -> 16 bytes.
bool ParseSegmentId(const std::string& hex, uint8_t out[16]);

// Registration of each binding file's functions.
void RegisterArena(Napi::Env env, Napi::Object exports);
void RegisterSync(Napi::Env env, Napi::Object exports);
void RegisterShm(Napi::Env env, Napi::Object exports);
void RegisterProcess(Napi::Env env, Napi::Object exports);
void RegisterWaiter(Napi::Env env, Napi::Object exports);
void RegisterFork(Napi::Env env, Napi::Object exports);

}  // namespace forksafe
