// NativeMap: one BPF map fd with lookup/update/delete, batches and
// iteration on Buffer keys and values. Either owns its fd (created, opened
// from a pin or by ID) or borrows it from an open bpf_object.
#pragma once

#include <bpf/libbpf.h>
#include <napi.h>

#include <memory>
#include <string>

#include "object_state.h"

namespace pharos {

class NativeMap : public Napi::ObjectWrap<NativeMap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Takes ownership of `fd` (closed on close() or GC); reads its info.
  static Napi::Object FromFd(Napi::Env env, int fd, const std::string &what);
  // A map of a loaded object; the fd stays libbpf's.
  static Napi::Object FromObject(Napi::Env env, std::shared_ptr<ObjectState> owner,
                                 struct bpf_map *map);

  explicit NativeMap(const Napi::CallbackInfo &info);
  ~NativeMap() override;

 private:
  void ReadInfo(Napi::Env env, int fd, const std::string &what);
  int Fd(Napi::Env env) const;  // throws when closed
  std::string Label() const { return "map '" + name_ + "'"; }
  void CheckKey(Napi::Env env, size_t len, size_t count = 1) const;
  void CheckValue(Napi::Env env, size_t len, size_t count = 1) const;
  // (keys, values, count, flags?) of the batch updates, checked against the map's sizes.
  struct BatchArgs {
    Napi::Buffer<uint8_t> keys, values;
    uint32_t count;
    uint64_t flags;
  };
  BatchArgs BatchArguments(const Napi::CallbackInfo &info) const;

  Napi::Value GetFd(const Napi::CallbackInfo &info);
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Lookup(const Napi::CallbackInfo &info);
  Napi::Value Update(const Napi::CallbackInfo &info);
  Napi::Value Delete(const Napi::CallbackInfo &info);
  Napi::Value UpdateBatch(const Napi::CallbackInfo &info);
  Napi::Value UpdateBatchAsync(const Napi::CallbackInfo &info);
  Napi::Value WriteMmapped(const Napi::CallbackInfo &info);
  Napi::Value DeleteBatch(const Napi::CallbackInfo &info);
  Napi::Value Keys(const Napi::CallbackInfo &info);
  Napi::Value Entries(const Napi::CallbackInfo &info);
  Napi::Value LookupBatch(const Napi::CallbackInfo &info);
  Napi::Value Pin(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);

  int ownedFd_ = -1;
  std::shared_ptr<ObjectState> owner_;
  struct bpf_map *objectMap_ = nullptr;
  bool closed_ = true;

  std::string name_;
  uint32_t type_ = 0, keySize_ = 0, valueSize_ = 0, maxEntries_ = 0, flags_ = 0, id_ = 0;
  bool perCpu_ = false;
  size_t valueBufferSize_ = 0;
};

// Map type names shared with the TS contract ('hash', 'percpu_array', ...).
const char *MapTypeName(uint32_t type);
bool MapTypeFromName(const std::string &name, uint32_t *type);

}  // namespace pharos
