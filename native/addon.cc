// Registers the bindings. Nothing else lives here.
#include <napi.h>

#include "util.h"

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  forksafe::RegisterFork(env, exports);  // first: installs the registry's atfork handlers
  forksafe::RegisterArena(env, exports);
  forksafe::RegisterSync(env, exports);
  forksafe::RegisterShm(env, exports);
  forksafe::RegisterProcess(env, exports);
  forksafe::RegisterWaiter(env, exports);
  return exports;
}
}  // namespace

NODE_API_MODULE(forksafe, Init)
