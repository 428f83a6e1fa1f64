#include "util.h"

#include "core/segment.h"

#include <errno.h>
#include <string.h>

#include <string>

namespace forksafe {

const char* ErrnoName(int err) {
  switch (err) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF)
    E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV)
    E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(EFBIG)
    E(ENOSPC) E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE) E(EDEADLK) E(ENAMETOOLONG)
    E(ENOSYS) E(ETIMEDOUT) E(EOVERFLOW) E(ENOTSUP) E(EOWNERDEAD) E(ENOTRECOVERABLE)
#undef E
    default: return "UNKNOWN";
  }
}

void ThrowSystemError(Napi::Env env, int neg_errno, const char* syscall) {
  int err = neg_errno < 0 ? -neg_errno : neg_errno;
  std::string msg = std::string(syscall) + " failed: " + strerror(err);
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
}

void BufferView::Release() {
  if (!released.exchange(true)) segment_release(seg);
}

EnvData* GetEnvData(Napi::Env env) { return env.GetInstanceData<EnvData>(); }

bool ParseSegmentId(const std::string& hex, uint8_t out[16]) {
  if (hex.size() != 32) return false;
  for (int i = 0; i < 16; i++) {
    unsigned v = 0;
    for (int k = 0; k < 2; k++) {
      char c = hex[static_cast<size_t>(i * 2 + k)];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else return false;
    }
    out[i] = static_cast<uint8_t>(v);
  }
  return true;
}

double TimeoutArg(const Napi::CallbackInfo& info, size_t i) {
  double t = ArgF64(info, i, -1);
  if (t != t) return 0;  // NaN: try once (it can only come from shared memory: a Barrier's default)
  return (t >= 0 && t < kForeverMs) ? t : -1;
}

void NoteView(Napi::Env env, uint32_t seg, int64_t delta) {
  EnvData* d = GetEnvData(env);
  if (!d) return;
  int64_t& v = d->views[seg];
  v += delta;
  if (v <= 0) d->views.erase(seg);
}

}  // namespace forksafe
