// Module entry: classes and functions of pharos_native. The typed wrapper is
// src/native/libbpf.ts; nothing else should require this file.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <napi.h>

#include <cerrno>

#include "addon_data.h"
#include "args.h"
#include "bindings.h"
#include "errors.h"
#include "map.h"
#include "object.h"
#include "packet_socket.h"

namespace pharos {

namespace {

Napi::Value SetErrorClassJs(const Napi::CallbackInfo &info) {
  if (!info[0].IsFunction()) ThrowInvalid(info.Env(), "setErrorClass: expects a constructor");
  SetErrorClass(info.Env(), info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value OpenObject(const Napi::CallbackInfo &info) {
  std::string path = ArgString(ArgAt(info, 0), "openObject: path");
  return NativeObject::Open(info.Env(), path);
}

Napi::Value OpenPinnedMap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(ArgAt(info, 0), "openPinnedMap: path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) Throw(env, errno, "opening pinned map " + path);
  return NativeMap::FromFd(env, fd, "pinned map " + path);
}

// createMap(type, keySize, valueSize, maxEntries, opts?)
Napi::Value CreateMap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string typeName = ArgString(ArgAt(info, 0), "createMap: type");
  uint32_t type;
  if (!MapTypeFromName(typeName, &type)) ThrowInvalid(env, "createMap: unknown map type '" + typeName + "'");
  uint32_t keySize = ArgInt(ArgAt(info, 1), "createMap: keySize", 0, UINT32_MAX);
  uint32_t valueSize = ArgInt(ArgAt(info, 2), "createMap: valueSize", 0, UINT32_MAX);
  uint32_t maxEntries = ArgInt(ArgAt(info, 3), "createMap: maxEntries", 0, UINT32_MAX);
  std::string name;
  uint32_t flags = 0;
  int innerFd = -1;
  Napi::Value optsValue = ArgAt(info, 4);
  if (!IsAbsent(optsValue)) {
    if (!optsValue.IsObject()) ThrowInvalid(env, "createMap: opts must be an object");
    Napi::Object o = optsValue.As<Napi::Object>();
    name = OptString(o.Get("name"), "createMap: name").value_or("");
    flags = OptInt(o.Get("flags"), "createMap: flags", 0, UINT32_MAX, 0);
    innerFd = OptInt(o.Get("innerMapFd"), "createMap: innerMapFd", -1, INT32_MAX, -1);
  }
  if (name.size() > 15) {
    // The kernel keeps 15 characters; refuse rather than truncate silently.
    ThrowInvalid(env, "createMap: name '" + name + "' is longer than 15 characters");
  }
  // An LPM trie must be created without preallocation.
  if (type == BPF_MAP_TYPE_LPM_TRIE) flags |= BPF_F_NO_PREALLOC;
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
  if (innerFd >= 0) opts.inner_map_fd = innerFd;
  uint64_t mark = LogMark();
  int fd = bpf_map_create(static_cast<enum bpf_map_type>(type), name.empty() ? nullptr : name.c_str(),
                          keySize, valueSize, maxEntries, &opts);
  if (fd < 0) {
    Throw(env, errno, "createMap(" + typeName + (name.empty() ? "" : " '" + name + "'") + ", key " +
                          std::to_string(keySize) + ", value " + std::to_string(valueSize) + ", max " +
                          std::to_string(maxEntries) + ")",
          mark);
  }
  return NativeMap::FromFd(env, fd, "map '" + name + "'");
}

Napi::Value MapFromId(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint32_t id = ArgInt(ArgAt(info, 0), "mapFromId: id", 1, UINT32_MAX);
  int fd = bpf_map_get_fd_by_id(id);
  if (fd < 0) Throw(env, errno, "opening map id " + std::to_string(id));
  return NativeMap::FromFd(env, fd, "map id " + std::to_string(id));
}

Napi::Value PossibleCpus(const Napi::CallbackInfo &info) {
  int n = libbpf_num_possible_cpus();
  if (n <= 0) Throw(info.Env(), n < 0 ? -n : EINVAL, "counting possible CPUs");
  return Napi::Number::New(info.Env(), n);
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfLog();
  auto *data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  data->mapClass = Napi::Persistent(NativeMap::Define(env));
  data->objectClass = Napi::Persistent(NativeObject::Define(env));
  data->programClass = Napi::Persistent(NativeProgram::Define(env));
  data->packetSocketClass = Napi::Persistent(NativePacketSocket::Define(env));

  struct Fn {
    const char *name;
    Napi::Value (*fn)(const Napi::CallbackInfo &);
  };
  const Fn fns[] = {
      {"setErrorClass", SetErrorClassJs}, {"openObject", OpenObject},   {"openPinnedMap", OpenPinnedMap},
      {"createMap", CreateMap},           {"mapFromId", MapFromId},     {"possibleCpus", PossibleCpus},
      {"ifIndex", IfIndex},               {"xdpAttach", XdpAttach},     {"xdpDetach", XdpDetach},
      {"xdpQuery", XdpQuery},             {"tcAttach", TcAttach},       {"tcDetach", TcDetach},
      {"tcQuery", TcQuery},
      {"testRun", TestRun},               {"testRunAsync", TestRunAsync}, {"sendFrame", SendFrame},
      {"setTcpMd5", SetTcpMd5},           {"tcpSocket", TcpSocket},
      {"setTtl", SetTtl},                 {"attachTtlFilter", AttachTtlFilter},
      {"cgroupLinkAttach", CgroupLinkAttach},
      {"cgroupLinkDetach", CgroupLinkDetach}, {"cgroupQuery", CgroupQuery},
      {"netnsCookie", NetnsCookie},       {"packetSocket", OpenPacketSocket},
      {"routeNextHops", RouteNextHops},   {"neighboursSet", NeighboursSet},
      {"livenessKeeper", LivenessKeeper},
  };
  for (const Fn &f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
  return exports;
}

}  // namespace pharos

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return pharos::Init(env, exports); }

NODE_API_MODULE(pharos_native, InitModule)
