// Bindings for SharedMemory segments: create, open by name, unlink.
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
  double sized = ArgF64(info, 1, 0);
  // Out of range (NaN, negative, beyond the maximum) -> 0, which shm_create
  // refuses with kRange: casting such a double to uint64_t is undefined.
  uint64_t size = sized >= 1 && sized <= static_cast<double>(kShmMaxSize) ? static_cast<uint64_t>(sized) : 0;
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

Napi::Value ShmUnlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
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
