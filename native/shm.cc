// Bindings for SharedMemory segments: create, open by name, unlink.
#include <errno.h>

#include <string>

#include "core/segment.h"
#include "util.h"

namespace forksafe {

namespace {

Napi::Value Pair(Napi::Env env, int status, uint32_t seg) {
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, status));
  a.Set(1u, Napi::Number::New(env, seg));
  return a;
}

// shmCreate(ctx, size, name|null, persistent) -> [status, seg]
Napi::Value ShmCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double size = ArgF64(info, 1, 0);
  // Written so that NaN fails too (no float -> integer overflow below).
  if (!(size >= 1 && size <= static_cast<double>(kShmMaxSize))) return Pair(env, kRange, 0);
  std::string name;
  if (info[2].IsString()) name = info[2].As<Napi::String>().Utf8Value();
  uint32_t seg = 0;
  int r = shm_create(ArgU32(info, 0), size, name.empty() ? nullptr : name.c_str(),
                     ArgBool(info, 3), &seg);
  if (r < 0) {
    ThrowSystemError(env, r, "shm_open");
    return env.Undefined();
  }
  if (r == kOk) NoteView(env, seg, 1);
  return Pair(env, r, seg);
}

Napi::Value ShmOpenName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  uint32_t seg = 0;
  int r = shm_open_existing(name.c_str(), &seg);
  if (r < 0) {
    ThrowSystemError(env, r, "shm_open");
    return env.Undefined();
  }
  if (r == kOk) NoteView(env, seg, 1);
  return Pair(env, r, seg);
}

// shmUnlink(name, idHex?, unlinkedHere?) -> 0: SharedMemory.unlink().
// With idHex, the segment with that id is first marked unlinked in its shared
// header (attach refuses it from then on, in every process); a second unlink
// (the mark already set, from any process) throws ENOENT, like shm_unlink(2)
// of a removed name, and leaves the name alone (it may name a new segment by
// now). Then a non-empty name (persistent) is removed from /dev/shm.
// `unlinkedHere`: this object's unlink() already ran while this process no
// longer mapped the segment (nothing left to mark): ENOENT too.
Napi::Value ShmUnlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  uint8_t id[16];
  if (info.Length() > 1 && info[1].IsString() && ParseSegmentId(info[1].As<Napi::String>().Utf8Value(), id)) {
    int m = shm_mark_unlinked(id);  // kBadHandle: not mapped here
    if (m == kBadHandle && name.empty() && ArgBool(info, 2)) m = -ENOENT;
    if (m < 0) {
      ThrowSystemError(env, m, name.empty() ? "unlink" : "shm_unlink");
      return env.Undefined();
    }
  }
  if (name.empty()) return Napi::Number::New(env, 0);
  int r = shm_unlink_named(name.c_str());
  if (r < 0) {
    ThrowSystemError(env, r, "shm_unlink");
    return env.Undefined();
  }
  return Napi::Number::New(env, 0);
}

}  // namespace

void RegisterShm(Napi::Env env, Napi::Object exports) {
  exports.Set("shmCreate", Napi::Function::New(env, ShmCreate, "shmCreate"));
  exports.Set("shmOpenName", Napi::Function::New(env, ShmOpenName, "shmOpenName"));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink, "shmUnlink"));
}

}  // namespace forksafe
