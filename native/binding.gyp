# pharos_native: node-addon-api over the system libbpf (Debian libbpf-dev,
# linked dynamically). Built by `npm run build:native`.
{
  "targets": [
    {
      "target_name": "pharos_native",
      "sources": [
        "src/addon.cc",
        "src/errors.cc",
        "src/netns.cc",
        "src/map.cc",
        "src/object.cc",
        "src/attach.cc",
        "src/cgroup.cc",
        "src/test_run.cc",
        "src/sockets.cc",
        "src/liveness.cc",
        "src/packet_socket.cc",
        "src/netlink.cc",
        "src/neighbours.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"
      ],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_cc": ["-std=gnu++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "libraries": ["-lbpf"]
    }
  ]
}
