// Bindings for fork(): the native fork of the running Node process, the
// child's native fixups (event loop, token, inherited references, async
// waits that belong to the parent), and _exit.
#include <uv.h>

#include <vector>
// V8's headers are not written for this project's warning flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <v8.h>
#pragma GCC diagnostic pop

#include "core/fork.h"
#include "core/platform.h"
#include "core/segment.h"
#include "util.h"

namespace forksafe {

void AsyncForgetAfterFork(Napi::Env env);  // waiter.cc

namespace {

// fork() -> pid in the parent, 0 in the child. JS has checked safety and run
// the prepare hooks; the child continues in JS with a copy of the heap.
Napi::Value Fork(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
    Napi::Error::New(env, "forksafe: no event loop").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  registry_install_atfork();
  // V8 marks its pages MADV_DONTFORK, and new pages come that way: redo it
  // right before every fork.
  int ranges = mark_all_dofork();
  if (ranges < 0) {
    ThrowSystemError(env, ranges, "madvise");
    return env.Undefined();
  }
  // uv_loop_fork runs in the child before signals are unblocked, so no
  // signal can reach the parent's signal pipe through the child's loop.
  int pid = fork_blocked([](void* l) {
    uv_loop_fork(static_cast<uv_loop_t*>(l));
    stdio_own_blocking();
  }, loop);
  if (pid < 0) {
    ThrowSystemError(env, pid, "fork");
    return env.Undefined();
  }
  if (pid == 0) {
    // The child, single-threaded; its loop was re-armed by uv_loop_fork.
    EnvData* d = GetEnvData(env);
    if (d) {
      d->token = make_token(d->thread_index);
      // Every slot reference this thread held is now held twice: by the
      // parent and by the child's copies of the objects.
      for (auto& kv : d->slots)
        slot_addref_inherited(static_cast<uint32_t>(kv.first >> 32), kv.first & 0xFFFFFFFFu, kv.second);
    }
    AsyncForgetAfterFork(env);
  }
  return Napi::Number::New(env, pid);
}

Napi::Value ExitNow(const Napi::CallbackInfo& info) {
  int code = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  EnvData* d = GetEnvData(info.Env());
  if (d) ReleaseThreadRefs(d);  // references inherited at fork, and any taken since
  exit_now(code & 0xFF);
}

Napi::Value Token(const Napi::CallbackInfo& info) {
  EnvData* d = GetEnvData(info.Env());
  return Napi::Number::New(info.Env(), d ? d->token : 0);
}

Napi::Value Pid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), self_pid()); }

// Four 32-bit words from the OS (getrandom), to seed the child's Math.random
// without a first OpenSSL call (which reseeds after fork, ~0.4 ms) on the
// child's start-up path.
Napi::Value Seed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint32Array out = Napi::Uint32Array::New(env, 4);
  int r = random_bytes(out.Data(), 16);
  if (r < 0) {
    ThrowSystemError(env, r, "getrandom");
    return env.Undefined();
  }
  return out;
}

// libuv requests in flight on this thread's loop: threadpool work (fs, dns,
// crypto, zlib), and socket writes/connects. Their completion would be lost
// (or duplicated) in a child. getActiveResourcesInfo() does not show crypto
// and zlib jobs, so this is the count fork() trusts.
Napi::Value ActiveRequests(const Napi::CallbackInfo& info) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(info.Env(), &loop) != napi_ok || !loop) return Napi::Number::New(info.Env(), 0);
  return Napi::Number::New(info.Env(), loop->active_reqs.count);
}

// Starts V8's termination of the running JavaScript: an exception no catch
// and no finally sees, which unwinds every JS frame down to the native code
// that called into JS (the event loop's callback, or Node's start-up), where
// it ends. fork(main) uses it in the child to leave the code that called
// fork() without running any of it (docs/fork.md, hazard 19). Only
// v8::Isolate::GetCurrent() and TerminateExecution() are used: both exported
// by every Node line forksafe supports (the same calls worker.terminate()
// makes), so the addon stays loadable across Node versions.
Napi::Value Terminate(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return Napi::Boolean::New(info.Env(), false);
  isolate->TerminateExecution();
  return Napi::Boolean::New(info.Env(), true);
}

// This process's other threads as [tid, name] pairs (forkSafety() counts
// what is really running, whatever started it).
Napi::Value Threads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static constexpr int kMax = 4096;
  std::vector<ThreadName> buf(kMax);
  int n = other_threads(buf.data(), kMax);
  if (n < 0) {
    ThrowSystemError(env, n, "opendir /proc/self/task");
    return env.Undefined();
  }
  int shown = n < kMax ? n : kMax;
  Napi::Array out = Napi::Array::New(env, static_cast<size_t>(shown));
  for (int i = 0; i < shown; i++) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::Number::New(env, buf[i].tid));
    pair.Set(1u, Napi::String::New(env, buf[i].name));
    out.Set(i, pair);
  }
  return out;
}

}  // namespace

void RegisterFork(Napi::Env env, Napi::Object exports) {
  registry_install_atfork();  // first: its prepare handler must run after the waiter's
  exports.Set("fork", Napi::Function::New(env, Fork, "fork"));
  exports.Set("exitNow", Napi::Function::New(env, ExitNow, "exitNow"));
  exports.Set("token", Napi::Function::New(env, Token, "token"));
  exports.Set("pid", Napi::Function::New(env, Pid, "pid"));
  exports.Set("seed", Napi::Function::New(env, Seed, "seed"));
  exports.Set("threads", Napi::Function::New(env, Threads, "threads"));
  exports.Set("terminate", Napi::Function::New(env, Terminate, "terminate"));
  exports.Set("activeRequests", Napi::Function::New(env, ActiveRequests, "activeRequests"));
}

}  // namespace forksafe
