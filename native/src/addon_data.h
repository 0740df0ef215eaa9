// Per-environment state of the addon (constructors kept alive across calls).
#pragma once

#include <napi.h>

namespace pharos {

struct AddonData {
  Napi::FunctionReference errorClass;    // BpfError from src/native/libbpf.ts
  Napi::FunctionReference mapClass;      // NativeMap
  Napi::FunctionReference objectClass;   // NativeObject
  Napi::FunctionReference programClass;  // NativeProgram
  Napi::FunctionReference packetSocketClass;  // NativePacketSocket
};

inline AddonData &Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace pharos
