# The Open MPI addon (docs/parallel.md). Built by scripts/build-mpi.mjs (`npm run build:mpi`, and the
# root postinstall), which passes --mpicc=<path>; Open MPI's own wrapper compiler tells us where mpi.h
# and libmpi are (`mpicc --showme:incdirs`, `--showme:link`), so no path is hard-coded here.
{
  "variables": {
    "mpicc%": "mpicc"
  },
  "targets": [
    {
      "target_name": "mpi_addon",
      "sources": ["mpi_addon.cc"],
      # node-addon-api's headers with C++ exceptions on (Napi::Error is thrown, not returned).
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "include_dirs": ["<!@(<(mpicc) --showme:incdirs)"],
      "libraries": ["<!@(<(mpicc) --showme:link)"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "cflags_cc!": ["-std=gnu++17", "-std=gnu++20", "-std=c++20"]
    }
  ]
}
