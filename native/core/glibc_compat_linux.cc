// glibc floor: keeps forksafe.node loadable on glibc 2.28 (RHEL 8, Debian 10,
// Ubuntu 18.10: what Node's own linux-x64 and linux-arm64 binaries need, from
// Node 20 to 26) however new the glibc it is built against. No N-API here.
//
// Why this file exists: a symbol reference is bound at link time to the
// *default* version of that symbol in the glibc being linked against, and the
// dynamic linker refuses to load the addon where that version is missing. glibc
// 2.32-2.36 gave several functions we use a new default version:
//   - 2.34 moved libpthread and librt into libc.so.6 and re-versioned what moved
//     (pthread_create, pthread_detach, pthread_once, pthread_mutex_trylock,
//     shm_open, shm_unlink: GLIBC_2.34);
//   - 2.32 re-versioned pthread_sigmask and added __libc_single_threaded (a byte
//     libstdc++'s headers read to skip atomic reference counts);
//   - 2.36 added arc4random, which the static libstdc++'s std::random_device
//     references (we never call it, but the object comes along with
//     std::system_error, which std::mutex may throw).
// fstat (an exported function only since 2.33, fstat64@GLIBC_2.33; older
// headers inlined a call to __fxstat64) is not here: platform_linux.cc calls
// the kernel for it (stat_fd).
//
// How: the link wraps each of these names (binding.gyp and CMakeLists.txt pass
// -Wl,--wrap=<name>), so every reference to <name>, in our objects *and* in the
// static libstdc++ objects, goes to __wrap_<name> below. On glibc x86-64 and
// aarch64 the wrapper calls the *oldest* version of the function (".symver
// name@GLIBC_<base>"), which every glibc still exports as a compat symbol and
// which on glibc < 2.34 is the one in libpthread.so.0 / librt.so.1 (so both are
// DT_NEEDED; see the build files). The behaviour is the same: newer glibcs
// keep the old versions as aliases of the same functions. Elsewhere (musl, other
// glibc architectures) the wrappers forward to __real_<name>, the plain
// default-version binding, and no floor is promised.
//
// Threading: none of the wrappers keeps state; all are thread-safe and the ones
// the code calls after fork() in the child (pthread_sigmask) are as
// async-signal-safe as the functions they forward to.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(__GLIBC__) && defined(__x86_64__)
#define FORKSAFE_GLIBC_BASE "GLIBC_2.2.5"  // x86-64's first symbol version
#elif defined(__GLIBC__) && defined(__aarch64__)
#define FORKSAFE_GLIBC_BASE "GLIBC_2.17"  // aarch64's first symbol version
#endif

#ifdef FORKSAFE_GLIBC_BASE
// forksafe_glibc_<name> is an undefined reference to <name>@GLIBC_<base>; the
// --wrap of <name> does not apply to it (it matches the unversioned name only).
#define FORKSAFE_OLD(name) \
  __asm__(".symver forksafe_glibc_" #name ", " #name "@" FORKSAFE_GLIBC_BASE)
#define FORKSAFE_CALL(name) forksafe_glibc_##name
#else
#define FORKSAFE_OLD(name) static_assert(true, "")
#define FORKSAFE_CALL(name) __real_##name
#endif

extern "C" {

// Declarations of both spellings; only the one FORKSAFE_CALL names is used.
#define FORKSAFE_DECLARE(ret, name, params) \
  ret forksafe_glibc_##name params;         \
  ret __real_##name params;                 \
  FORKSAFE_OLD(name)

FORKSAFE_DECLARE(int, pthread_create,
                 (pthread_t*, const pthread_attr_t*, void* (*)(void*), void*));
FORKSAFE_DECLARE(int, pthread_detach, (pthread_t));
FORKSAFE_DECLARE(int, pthread_once, (pthread_once_t*, void (*)(void)));
FORKSAFE_DECLARE(int, pthread_mutex_trylock, (pthread_mutex_t*));
FORKSAFE_DECLARE(int, pthread_sigmask, (int, const sigset_t*, sigset_t*));
FORKSAFE_DECLARE(int, shm_open, (const char*, int, mode_t));
FORKSAFE_DECLARE(int, shm_unlink, (const char*));

// waiter_linux.cc: the async waiter threads.
int __wrap_pthread_create(pthread_t* th, const pthread_attr_t* attr, void* (*fn)(void*),
                          void* arg) {
  return FORKSAFE_CALL(pthread_create)(th, attr, fn, arg);
}
int __wrap_pthread_detach(pthread_t th) { return FORKSAFE_CALL(pthread_detach)(th); }

// segment_linux.cc / waiter_linux.cc: registering the atfork handlers once.
int __wrap_pthread_once(pthread_once_t* once, void (*fn)(void)) {
  return FORKSAFE_CALL(pthread_once)(once, fn);
}

// std::mutex::try_lock (inline in <mutex>), used by the waiter threads.
int __wrap_pthread_mutex_trylock(pthread_mutex_t* mu) {
  return FORKSAFE_CALL(pthread_mutex_trylock)(mu);
}

// fork_linux.cc / waiter_linux.cc: every signal blocked around fork() and
// pthread_create().
int __wrap_pthread_sigmask(int how, const sigset_t* set, sigset_t* old) {
  return FORKSAFE_CALL(pthread_sigmask)(how, set, old);
}

// platform_linux.cc: persistent SharedMemory in /dev/shm (librt before 2.34).
int __wrap_shm_open(const char* name, int flags, mode_t mode) {
  return FORKSAFE_CALL(shm_open)(name, flags, mode);
}
int __wrap_shm_unlink(const char* name) { return FORKSAFE_CALL(shm_unlink)(name); }

// libstdc++ (headers and static objects) reads this byte to use plain instead
// of atomic reference counts while the process has one thread. 0 = "maybe
// multi-threaded": always atomic, which is correct everywhere (a Node process
// has threads anyway). Never written.
char __wrap___libc_single_threaded = 0;

// Only std::random_device (static libstdc++) references arc4random, and
// forksafe never constructs one. Should it be called, it returns kernel
// randomness like glibc's, through the raw syscall (getrandom(3) is 2.25).
uint32_t __wrap_arc4random(void) {
  uint32_t v = 0;
  size_t got = 0;
  while (got < sizeof(v)) {
    long r = syscall(SYS_getrandom, reinterpret_cast<char*>(&v) + got, sizeof(v) - got, 0);
    if (r > 0) got += static_cast<size_t>(r);
    else if (r == 0 || errno != EINTR) break;  // ENOSYS (kernel < 3.17): best effort
  }
  return v;
}

}  // extern "C"
