// Bindings for child-process supervision: a pidfd per child so that join()
// can wait for exit synchronously without reaping (libuv owns the reaping).
#include <errno.h>
#include <signal.h>

#include "core/platform.h"
#include "util.h"

#include <string>
#include <vector>

namespace forksafe {

namespace {

bool FdArg(const Napi::CallbackInfo& info, size_t i, int* fd);

// { code, signal }: code null when a signal ended the process.
Napi::Value ExitObject(Napi::Env env, int code, int sig) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("code", sig ? env.Null() : Napi::Number::New(env, code));
  o.Set("signal", Napi::Number::New(env, sig));
  return o;
}

Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || ArgF64(info, 0, 0) < 1) {
    Napi::TypeError::New(env, "pidfdOpen: pid must be a positive integer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int r = pidfd_open_pid(ArgU32(info, 0));
  if (r < 0) {
    ThrowSystemError(env, r, "pidfd_open");
    return env.Undefined();
  }
  return Napi::Number::New(env, r);
}

// pidfdWait(fd, timeoutMs) -> null on timeout, else { code, signal }
bool FdArg(const Napi::CallbackInfo& info, size_t i, int* fd) {
  if (!info[i].IsNumber()) return false;
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 2147483647.0) || d != static_cast<double>(static_cast<int>(d))) return false;
  *fd = static_cast<int>(d);
  return true;
}

Napi::Value PidfdWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) {
    Napi::TypeError::New(env, "pidfdWait: fd must be a non-negative integer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int code = 0, sig = 0;
  int r = pidfd_wait_exit(fd, ArgF64(info, 1, -1), &code, &sig);
  if (r < 0) {
    ThrowSystemError(env, r, "waitid");
    return env.Undefined();
  }
  if (r == 0) return env.Null();
  return ExitObject(env, code, sig);
}

// payloadFd(bytes) -> fd: a memfd holding the bytes, offset 0, for a child to
// inherit and read. Written synchronously, so the parent may block right
// after start() (e.g. in a sync wait for the child) without starving it.
Napi::Value PayloadFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) {
    Napi::TypeError::New(env, "payloadFd: expected a Uint8Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
  int fd = write_payload_fd(a.Data(), a.ByteLength());
  if (fd < 0) {
    ThrowSystemError(env, fd, "memfd_create");
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

// reapPidfd(fd) -> null while running, else { code, signal } (reaped: our own
// fork()ed children, which libuv does not know about).
Napi::Value ReapPidfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) {
    Napi::TypeError::New(env, "reapPidfd: fd must be a non-negative integer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int code = 0, sig = 0;
  int r = pidfd_reap(fd, &code, &sig);
  if (r < 0) {
    ThrowSystemError(env, r, "waitid");
    return env.Undefined();
  }
  if (r == 0) return env.Null();
  return ExitObject(env, code, sig);
}

// pidfdKill(fd, signal): pidfd_send_signal, immune to pid reuse.
Napi::Value PidfdKill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) {
    Napi::TypeError::New(env, "pidfdKill: fd must be a non-negative integer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int r = pidfd_signal(fd, ArgI32(info, 1));
  if (r < 0 && r != -ESRCH) {
    ThrowSystemError(env, r, "pidfd_send_signal");
    return env.Undefined();
  }
  return Napi::Number::New(env, r);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd;
  if (!FdArg(info, 0, &fd)) {
    Napi::TypeError::New(info.Env(), "closeFd: fd must be a non-negative integer").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), close_fd(fd));
}

}  // namespace

// setPdeathsig(sig) -> the parent's pid after asking for `sig` at its death.
Napi::Value SetPdeathsig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sig = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : -1;
  if (sig < 0 || sig > 64) {
    Napi::TypeError::New(env, "setPdeathsig: sig must be a signal number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int r = set_parent_death_signal(sig);
  if (r < 0) {
    ThrowSystemError(env, r, "prctl");
    return env.Undefined();
  }
  return Napi::Number::New(env, r);
}

// execReplace(file, argv[], env[], keepFds?): execve; throws on failure, else never returns.
Napi::Value ExecReplace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsArray() || !info[2].IsArray()) {
    Napi::TypeError::New(env, "execReplace: (file: string, argv: string[], env: string[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string file = info[0].As<Napi::String>().Utf8Value();
  std::vector<std::string> store[2];
  for (int k = 0; k < 2; k++) {
    Napi::Array a = info[1 + k].As<Napi::Array>();
    if (a.Length() > 65536) {
      Napi::RangeError::New(env, "execReplace: too many strings").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      if (!v.IsString()) {
        Napi::TypeError::New(env, "execReplace: argv and env must hold strings").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      store[k].push_back(v.As<Napi::String>().Utf8Value());
    }
  }
  std::vector<char*> ptrs[2];
  for (int k = 0; k < 2; k++) {
    for (auto& str : store[k]) ptrs[k].push_back(const_cast<char*>(str.c_str()));
    ptrs[k].push_back(nullptr);
  }
  // Descriptors to keep across execve (their close-on-exec flag cleared).
  if (info[3].IsArray()) {
    Napi::Array keep = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < keep.Length(); i++) {
      Napi::Value v = keep.Get(i);
      if (!v.IsNumber()) continue;
      int fd = v.As<Napi::Number>().Int32Value();
      if (fd >= 0) fd_keep_on_exec(fd);
    }
  }
  int r = exec_replace(file.c_str(), ptrs[0].data(), ptrs[1].data());
  ThrowSystemError(env, r, "execve");
  return env.Undefined();
}

// ownChild(pidfd) / disownChild(pidfd): a child this JS thread must not
// outlive (killed and reaped at the thread's end; see EnvCleanup in arena.cc).
Napi::Value OwnChild(const Napi::CallbackInfo& info) {
  int fd;
  EnvData* d = GetEnvData(info.Env());
  if (!FdArg(info, 0, &fd) || !d) {
    Napi::TypeError::New(info.Env(), "ownChild: fd must be a non-negative integer").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  d->owned_children.push_back(fd);
  return info.Env().Undefined();
}

Napi::Value DisownChild(const Napi::CallbackInfo& info) {
  int fd;
  EnvData* d = GetEnvData(info.Env());
  if (!FdArg(info, 0, &fd) || !d) {
    Napi::TypeError::New(info.Env(), "disownChild: fd must be a non-negative integer").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  auto& v = d->owned_children;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (*it == fd) {
      v.erase(it);
      break;
    }
  }
  return info.Env().Undefined();
}

void RegisterProcess(Napi::Env env, Napi::Object exports) {
  exports.Set("ownChild", Napi::Function::New(env, OwnChild, "ownChild"));
  exports.Set("disownChild", Napi::Function::New(env, DisownChild, "disownChild"));
  exports.Set("execReplace", Napi::Function::New(env, ExecReplace, "execReplace"));
  exports.Set("setPdeathsig", Napi::Function::New(env, SetPdeathsig, "setPdeathsig"));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("pidfdWait", Napi::Function::New(env, PidfdWait, "pidfdWait"));
  exports.Set("reapPidfd", Napi::Function::New(env, ReapPidfd, "reapPidfd"));
  exports.Set("pidfdKill", Napi::Function::New(env, PidfdKill, "pidfdKill"));
  exports.Set("payloadFd", Napi::Function::New(env, PayloadFd, "payloadFd"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
}

}  // namespace forksafe
