# node-gyp build of the forksafe addon -> build/Release/forksafe.node
# (loaded with node-gyp-build). CMakeLists.txt builds the same target for
# `npm run build:cmake`: keep sources, defines and flags equal in both files.
{
  "targets": [
    {
      "target_name": "forksafe",
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
            "native/core/fork_linux.cc"
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
          "cflags_cc": ["-std=c++17"]
        }]
        # A macOS port adds an ["OS=='mac'", {...}] block here with its
        # *_posix.cc / *_darwin.cc sources and the same flags in xcode_settings.
      ]
    }
  ]
}
