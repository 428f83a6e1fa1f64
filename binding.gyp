# node-gyp build of the forksafe addon -> build/Release/forksafe.node
# (loaded with node-gyp-build). CMakeLists.txt builds the same target for
# `npm run build:cmake`: keep sources, defines and flags equal in both files.
{
  "targets": [
    {
      "target_name": "forksafe",
      "variables": {
        # Asked of the compiler the build uses ($CXX, as the Makefile does).
        # 1 if it has a static libstdc++ (-print-file-name prints a bare name
        # when it has none).
        "forksafe_static_libstdcxx%": "<!(f=$(${CXX:-g++} -print-file-name=libstdc++.a); test -f \"$f\" && echo 1 || echo 0)",
        # 1 if it targets glibc (x86_64-linux-gnu, aarch64-linux-gnu...; musl
        # triples end in -musl).
        "forksafe_glibc%": "<!(${CXX:-g++} -dumpmachine | grep -q -- -gnu && echo 1 || echo 0)"
      },
      # Portable sources. Platform files are added per OS below.
      "sources": [
        "native/addon.cc",
        "native/util.cc",
        "native/arena.cc",
        "native/sync.cc",
        "native/shm.cc",
        "native/process.cc",
        "native/waiter.cc",
        "native/fork.cc",
        "native/core/sync.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native"
      ],
      "defines": [
        # The one NAPI_VERSION of this build system; CMakeLists.txt has the same value.
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/core/platform_linux.cc",
            "native/core/segment_linux.cc",
            "native/core/waiter_linux.cc",
            "native/core/deathwatch_linux.cc",
            "native/core/fork_linux.cc",
            "native/core/glibc_compat_linux.cc"
          ],
          # Node's common.gypi adds -fno-exceptions -fno-rtti -fPIC -pthread
          # -fno-omit-frame-pointer; drop its -O3, -std=gnu++17 and
          # -Wno-unused-parameter so the flags are exactly ours.
          "cflags!": ["-O3", "-Wno-unused-parameter"],
          "cflags_cc!": ["-O3", "-std=gnu++17"],
          "cflags": [
            "-Wall", "-Wextra", "-Werror", "-O2",
            "-fstack-protector-strong", "-fvisibility=hidden"
          ],
          "cflags_cc": ["-std=c++17"],
          # glibc floor (2.28 on x86-64 and aarch64; see glibc_compat_linux.cc and
          # docs/install.md): libstdc++ linked in statically when the compiler has
          # libstdc++.a (RHEL/Fedora need libstdc++-static; without it the addon
          # links libstdc++.so.6 as before), its symbols kept out of the dynamic
          # symbol table; references to symbols newer glibcs re-versioned go to
          # the wrappers in glibc_compat_linux.cc.
          "ldflags": [
            "-Wl,--exclude-libs,ALL",
            "-Wl,--wrap=pthread_create",
            "-Wl,--wrap=pthread_detach",
            "-Wl,--wrap=pthread_once",
            "-Wl,--wrap=pthread_mutex_trylock",
            "-Wl,--wrap=pthread_sigmask",
            "-Wl,--wrap=shm_open",
            "-Wl,--wrap=shm_unlink",
            "-Wl,--wrap=__libc_single_threaded",
            "-Wl,--wrap=arc4random"
          ],
          "conditions": [
            ["forksafe_static_libstdcxx==1", {
              "ldflags": ["-static-libstdc++"]
            }],
            # glibc < 2.34 has the old pthread_* / shm_* in libpthread.so.0 and
            # librt.so.1 (newer ones keep them as stubs): load both, even where
            # the linker finds nothing it needs in them.
            ["forksafe_glibc==1", {
              "libraries": [
                "-Wl,--push-state,--no-as-needed",
                "-l:libpthread.so.0",
                "-l:librt.so.1",
                "-Wl,--pop-state"
              ]
            }]
          ]
        }]
        # A macOS port adds an ["OS=='mac'", {...}] block here with its
        # *_posix.cc / *_darwin.cc sources and the same flags in xcode_settings.
      ]
    }
  ]
}
