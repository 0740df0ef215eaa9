// NativeObject (a BPF object file opened with libbpf, configured, then
// loaded) and NativeProgram (one program of it).
#pragma once

#include <bpf/libbpf.h>
#include <napi.h>

#include <memory>
#include <string>

#include "object_state.h"

namespace pharos {

class NativeObject : public Napi::ObjectWrap<NativeObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Open(Napi::Env env, const std::string &path);

  explicit NativeObject(const Napi::CallbackInfo &info);

 private:
  struct bpf_object *Obj(Napi::Env env) const;  // throws when closed
  struct bpf_map *FindMap(Napi::Env env, const std::string &name) const;
  void RequireNotLoaded(Napi::Env env, const std::string &what) const;
  void RequireLoaded(Napi::Env env, const std::string &what) const;

  Napi::Value GetPath(const Napi::CallbackInfo &info);
  Napi::Value GetLoaded(const Napi::CallbackInfo &info);
  Napi::Value SetRodata(const Napi::CallbackInfo &info);
  Napi::Value SetMaxEntries(const Napi::CallbackInfo &info);
  Napi::Value SetPinPath(const Napi::CallbackInfo &info);
  Napi::Value SetAutocreate(const Napi::CallbackInfo &info);
  Napi::Value Load(const Napi::CallbackInfo &info);
  Napi::Value LoadAsync(const Napi::CallbackInfo &info);
  Napi::Value Map(const Napi::CallbackInfo &info);
  Napi::Value Program(const Napi::CallbackInfo &info);
  Napi::Value MapNames(const Napi::CallbackInfo &info);
  Napi::Value ProgramNames(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);

  std::shared_ptr<ObjectState> state_ = std::make_shared<ObjectState>();
};

class NativeProgram : public Napi::ObjectWrap<NativeProgram> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Create(Napi::Env env, std::shared_ptr<ObjectState> owner,
                             struct bpf_program *prog);

  explicit NativeProgram(const Napi::CallbackInfo &info);

 private:
  Napi::Value GetFd(const Napi::CallbackInfo &info);
  Napi::Value Info(const Napi::CallbackInfo &info);
  Napi::Value Pin(const Napi::CallbackInfo &info);

  std::shared_ptr<ObjectState> owner_;
  struct bpf_program *prog_ = nullptr;
  std::string name_;
  std::string type_;
  uint32_t id_ = 0;
};

}  // namespace pharos
