#include "object.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "addon_data.h"
#include "args.h"
#include "errors.h"
#include "map.h"

namespace pharos {

// ---- NativeObject ---------------------------------------------------------

Napi::Function NativeObject::Define(Napi::Env env) {
  return DefineClass(env, "NativeObject",
                     {
                         InstanceAccessor<&NativeObject::GetPath>("path"),
                         InstanceAccessor<&NativeObject::GetLoaded>("loaded"),
                         InstanceMethod<&NativeObject::SetRodata>("setRodata"),
                         InstanceMethod<&NativeObject::SetMaxEntries>("setMaxEntries"),
                         InstanceMethod<&NativeObject::SetPinPath>("setPinPath"),
                         InstanceMethod<&NativeObject::SetAutocreate>("setAutocreate"),
                         InstanceMethod<&NativeObject::Load>("load"),
                         InstanceMethod<&NativeObject::LoadAsync>("loadAsync"),
                         InstanceMethod<&NativeObject::Map>("map"),
                         InstanceMethod<&NativeObject::Program>("program"),
                         InstanceMethod<&NativeObject::MapNames>("mapNames"),
                         InstanceMethod<&NativeObject::ProgramNames>("programNames"),
                         InstanceMethod<&NativeObject::Close>("close"),
                     });
}

NativeObject::NativeObject(const Napi::CallbackInfo &info) : Napi::ObjectWrap<NativeObject>(info) {}

Napi::Object NativeObject::Open(Napi::Env env, const std::string &path) {
  uint64_t mark = LogMark();
  struct bpf_object *obj = bpf_object__open_file(path.c_str(), nullptr);
  if (obj == nullptr) Throw(env, errno, "opening BPF object " + path, mark);
  Napi::Object wrapper = Data(env).objectClass.New({});
  NativeObject *self = Unwrap(wrapper);
  self->state_->obj = obj;
  self->state_->path = path;
  return wrapper;
}

struct bpf_object *NativeObject::Obj(Napi::Env env) const {
  if (state_->loading) {
    throw MakeErrorRaw(env, EBUSY, "BPF object " + state_->path + " is being loaded");
  }
  if (!state_->open()) {
    throw MakeErrorRaw(env, EBADF, "BPF object " + state_->path + " is closed");
  }
  return state_->obj;
}

struct bpf_map *NativeObject::FindMap(Napi::Env env, const std::string &name) const {
  struct bpf_map *map = bpf_object__find_map_by_name(Obj(env), name.c_str());
  if (map == nullptr) {
    std::string known;
    struct bpf_map *m;
    bpf_object__for_each_map(m, state_->obj) {
      known += (known.empty() ? "" : ", ") + std::string(bpf_map__name(m));
    }
    throw MakeErrorRaw(env, ENOENT,
                       "BPF object " + state_->path + " has no map '" + name + "' (maps: " + known + ")");
  }
  return map;
}

void NativeObject::RequireNotLoaded(Napi::Env env, const std::string &what) const {
  if (state_->loaded) {
    throw MakeErrorRaw(env, EBUSY, what + ": BPF object " + state_->path + " is already loaded");
  }
}

void NativeObject::RequireLoaded(Napi::Env env, const std::string &what) const {
  if (!state_->loaded) {
    throw MakeErrorRaw(env, EINVAL, what + ": BPF object " + state_->path + " is not loaded yet");
  }
}

Napi::Value NativeObject::GetPath(const Napi::CallbackInfo &info) {
  return Napi::String::New(info.Env(), state_->path);
}

Napi::Value NativeObject::GetLoaded(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), state_->loaded && state_->open());
}

// Finds `variable` in a read-only data section (".rodata" or ".rodata.*")
// through the object's BTF and patches the map's initial value at its offset.
Napi::Value NativeObject::SetRodata(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_object *obj = Obj(env);
  std::string variable = ArgString(ArgAt(info, 0), "setRodata: variable");
  Napi::Buffer<uint8_t> value = ArgBuffer(ArgAt(info, 1), "setRodata(" + variable + "): value");
  std::string what = "setRodata(" + variable + ") on " + state_->path;
  RequireNotLoaded(env, what);

  struct btf *btf = bpf_object__btf(obj);
  if (btf == nullptr) throw MakeErrorRaw(env, ENOENT, what + ": the object has no BTF (compile with -g)");
  uint32_t types = btf__type_cnt(btf);
  for (uint32_t id = 1; id < types; id++) {
    const struct btf_type *sec = btf__type_by_id(btf, id);
    if (!btf_is_datasec(sec)) continue;
    const char *secName = btf__name_by_offset(btf, sec->name_off);
    if (secName == nullptr || strncmp(secName, ".rodata", 7) != 0) continue;
    const struct btf_var_secinfo *vs = btf_var_secinfos(sec);
    for (uint16_t i = 0; i < btf_vlen(sec); i++, vs++) {
      const struct btf_type *var = btf__type_by_id(btf, vs->type);
      const char *varName = var ? btf__name_by_offset(btf, var->name_off) : nullptr;
      if (varName == nullptr || variable != varName) continue;
      if (value.Length() != vs->size) {
        ThrowInvalid(env, what + ": value is " + std::to_string(value.Length()) +
                              " bytes, the variable is " + std::to_string(vs->size));
      }
      struct bpf_map *map = bpf_object__find_map_by_name(obj, secName);
      size_t size = 0;
      const void *initial = map ? bpf_map__initial_value(map, &size) : nullptr;
      if (initial == nullptr || vs->offset + vs->size > size) {
        throw MakeErrorRaw(env, ENOENT, what + ": no initial value for section " + secName);
      }
      std::vector<uint8_t> data(static_cast<const uint8_t *>(initial),
                                static_cast<const uint8_t *>(initial) + size);
      memcpy(data.data() + vs->offset, value.Data(), vs->size);
      uint64_t mark = LogMark();
      int rc = bpf_map__set_initial_value(map, data.data(), data.size());
      if (rc != 0) Throw(env, -rc, what, mark);
      return env.Undefined();
    }
  }
  throw MakeErrorRaw(env, ENOENT,
                     what + ": no such const volatile variable in .rodata (is it used by the program, "
                            "and declared `const volatile`?)");
}

Napi::Value NativeObject::SetMaxEntries(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(ArgAt(info, 0), "setMaxEntries: map");
  uint32_t n = ArgInt(ArgAt(info, 1), "setMaxEntries(" + name + "): n", 1, UINT32_MAX);
  std::string what = "setMaxEntries(" + name + ") on " + state_->path;
  RequireNotLoaded(env, what);
  struct bpf_map *map = FindMap(env, name);
  uint64_t mark = LogMark();
  int rc = bpf_map__set_max_entries(map, n);
  if (rc != 0) Throw(env, -rc, what, mark);
  return env.Undefined();
}

Napi::Value NativeObject::SetPinPath(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(ArgAt(info, 0), "setPinPath: map");
  std::string path = ArgString(ArgAt(info, 1), "setPinPath(" + name + "): path");
  std::string what = "setPinPath(" + name + ", " + path + ") on " + state_->path;
  RequireNotLoaded(env, what);
  struct bpf_map *map = FindMap(env, name);
  uint64_t mark = LogMark();
  int rc = bpf_map__set_pin_path(map, path.c_str());
  if (rc != 0) Throw(env, -rc, what, mark);
  return env.Undefined();
}

// setAutocreate(map, bool): before load. An object that shares a header with
// another may carry maps it never uses; false leaves them uncreated.
Napi::Value NativeObject::SetAutocreate(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(ArgAt(info, 0), "setAutocreate: map");
  Napi::Value flag = ArgAt(info, 1);
  if (!flag.IsBoolean()) ThrowInvalid(env, "setAutocreate(" + name + "): value must be a boolean");
  std::string what = "setAutocreate(" + name + ") on " + state_->path;
  RequireNotLoaded(env, what);
  struct bpf_map *map = FindMap(env, name);
  uint64_t mark = LogMark();
  int rc = bpf_map__set_autocreate(map, flag.As<Napi::Boolean>().Value());
  if (rc != 0) Throw(env, -rc, what, mark);
  return env.Undefined();
}

Napi::Value NativeObject::Load(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct bpf_object *obj = Obj(env);
  RequireNotLoaded(env, "load");
  uint64_t mark = LogMark();
  int rc = bpf_object__load(obj);
  // libbpf 1.1 cannot retry a failed load: the object stays unusable.
  if (rc != 0) Throw(env, -rc, "loading BPF object " + state_->path, mark);
  state_->loaded = true;
  return env.Undefined();
}

namespace {

// bpf_object__load off the JS thread: the verifier takes seconds for a large
// program, and the agent's event loop must keep serving meanwhile.
class ObjectLoadWorker : public Napi::AsyncWorker {
 public:
  ObjectLoadWorker(Napi::Env env, std::shared_ptr<ObjectState> state, uint64_t mark)
      : Napi::AsyncWorker(env, "pharos.objectLoad"), state_(std::move(state)), mark_(mark), deferred_(env) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { rc_ = bpf_object__load(state_->obj); }

  void OnOK() override {
    Napi::Env env = Env();
    state_->loading = false;
    if (rc_ == 0) state_->loaded = true;
    if (state_->closeWhenLoaded) {
      state_->Close();
      deferred_.Reject(MakeErrorRaw(env, EBADF, "BPF object " + state_->path + " was closed while loading").Value());
      return;
    }
    // libbpf 1.1 cannot retry a failed load: the object stays unusable.
    if (rc_ != 0) {
      deferred_.Reject(MakeError(env, -rc_, "loading BPF object " + state_->path, mark_).Value());
      return;
    }
    deferred_.Resolve(env.Undefined());
  }

 private:
  std::shared_ptr<ObjectState> state_;
  uint64_t mark_;
  int rc_ = 0;
  Napi::Promise::Deferred deferred_;
};

}  // namespace

// loadAsync() -> Promise<void>: load() on a worker thread; the object is unusable until it settles.
Napi::Value NativeObject::LoadAsync(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Obj(env);
  RequireNotLoaded(env, "loadAsync");
  auto *worker = new ObjectLoadWorker(env, state_, LogMark());
  state_->loading = true;
  worker->Queue();
  return worker->Promise();
}

Napi::Value NativeObject::Map(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(ArgAt(info, 0), "map: name");
  struct bpf_map *map = FindMap(env, name);
  RequireLoaded(env, "map(" + name + ")");
  return NativeMap::FromObject(env, state_, map);
}

Napi::Value NativeObject::Program(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(ArgAt(info, 0), "program: name");
  struct bpf_program *prog = bpf_object__find_program_by_name(Obj(env), name.c_str());
  if (prog == nullptr) {
    std::string known;
    struct bpf_program *p;
    bpf_object__for_each_program(p, state_->obj) {
      known += (known.empty() ? "" : ", ") + std::string(bpf_program__name(p));
    }
    throw MakeErrorRaw(env, ENOENT,
                       "BPF object " + state_->path + " has no program '" + name + "' (programs: " + known + ")");
  }
  RequireLoaded(env, "program(" + name + ")");
  return NativeProgram::Create(env, state_, prog);
}

// The names along libbpf's `next(prev)` walk of an object's maps or programs.
template <typename Next, typename Name>
static Napi::Array NamesOf(Napi::Env env, Next next, Name name) {
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  for (auto *x = next(nullptr); x != nullptr; x = next(x)) out.Set(i++, name(x));
  return out;
}

Napi::Value NativeObject::MapNames(const Napi::CallbackInfo &info) {
  struct bpf_object *obj = Obj(info.Env());
  return NamesOf(info.Env(), [obj](const struct bpf_map *m) { return bpf_object__next_map(obj, m); }, bpf_map__name);
}

Napi::Value NativeObject::ProgramNames(const Napi::CallbackInfo &info) {
  struct bpf_object *obj = Obj(info.Env());
  return NamesOf(info.Env(), [obj](struct bpf_program *p) { return bpf_object__next_program(obj, p); }, bpf_program__name);
}

Napi::Value NativeObject::Close(const Napi::CallbackInfo &info) {
  // Idempotent; maps and programs taken from it report "object closed" after.
  state_->Close();
  return info.Env().Undefined();
}

// ---- NativeProgram --------------------------------------------------------

Napi::Function NativeProgram::Define(Napi::Env env) {
  return DefineClass(env, "NativeProgram",
                     {
                         InstanceAccessor<&NativeProgram::GetFd>("fd"),
                         InstanceMethod<&NativeProgram::Info>("info"),
                         InstanceMethod<&NativeProgram::Pin>("pin"),
                     });
}

NativeProgram::NativeProgram(const Napi::CallbackInfo &info) : Napi::ObjectWrap<NativeProgram>(info) {}

Napi::Object NativeProgram::Create(Napi::Env env, std::shared_ptr<ObjectState> owner,
                                   struct bpf_program *prog) {
  Napi::Object wrapper = Data(env).programClass.New({});
  NativeProgram *self = Unwrap(wrapper);
  self->owner_ = std::move(owner);
  self->prog_ = prog;
  self->name_ = bpf_program__name(prog);
  const char *type = libbpf_bpf_prog_type_str(bpf_program__type(prog));
  self->type_ = type ? type : "unknown";
  struct bpf_prog_info pinfo;
  memset(&pinfo, 0, sizeof(pinfo));
  uint32_t len = sizeof(pinfo);
  if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &pinfo, &len) != 0) {
    Throw(env, errno, "program '" + self->name_ + "': reading program info");
  }
  self->id_ = pinfo.id;
  return wrapper;
}

Napi::Value NativeProgram::GetFd(const Napi::CallbackInfo &info) {
  if (!owner_ || !owner_->open()) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), bpf_program__fd(prog_));
}

Napi::Value NativeProgram::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name_);
  o.Set("type", type_);
  o.Set("id", id_);
  return o;
}

Napi::Value NativeProgram::Pin(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(ArgAt(info, 0), "program '" + name_ + "': pin path");
  if (!owner_ || !owner_->open()) {
    throw MakeErrorRaw(env, EBADF, "program '" + name_ + "': its object is closed");
  }
  if (bpf_obj_pin(bpf_program__fd(prog_), path.c_str()) != 0) {
    Throw(env, errno, "program '" + name_ + "': pinning at " + path);
  }
  return env.Undefined();
}

}  // namespace pharos
