// Built only into the sanitizer build (CMakeLists.txt, FORKSAFE_SANITIZE; see
// scripts/sanitize.mjs), never into the shipped addon. No N-API.
//
// Why: node is not instrumented, so libasan is LD_PRELOADed and comes first in
// the symbol search order, while libubsan comes in later as a dependency of
// this addon. Each runtime has its own copy of sanitizer_common, and libubsan's
// own calls to the public __sanitizer_set_report_path resolve to libasan's copy:
// UBSAN_OPTIONS=log_path never reaches libubsan, whose reports go to stderr,
// which a test may capture and drop. Looked up through libubsan's own handle,
// dlsym returns libubsan's copy; the path comes from FORKSAFE_UBSAN_LOG_PATH
// (the prefix of one file per reporting process, <prefix>.<pid>).
#include <dlfcn.h>
#include <stdlib.h>

namespace {

__attribute__((constructor)) void forksafe_ubsan_report_path() {
  const char* path = getenv("FORKSAFE_UBSAN_LOG_PATH");
  if (!path || !path[0]) return;
  void* h = dlopen("libubsan.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (!h) return;
  auto set = reinterpret_cast<void (*)(const char*)>(dlsym(h, "__sanitizer_set_report_path"));
  if (set) set(path);
  dlclose(h);  // RTLD_NOLOAD took a reference; the library stays loaded
}

}  // namespace
