#include "map.h"

#include <bpf/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "addon_data.h"
#include "args.h"
#include "errors.h"

namespace pharos {

namespace {

struct TypeName {
  uint32_t type;
  const char *name;
};

const TypeName kTypeNames[] = {
    {BPF_MAP_TYPE_HASH, "hash"},
    {BPF_MAP_TYPE_ARRAY, "array"},
    {BPF_MAP_TYPE_PERCPU_HASH, "percpu_hash"},
    {BPF_MAP_TYPE_PERCPU_ARRAY, "percpu_array"},
    {BPF_MAP_TYPE_LRU_HASH, "lru_hash"},
    {BPF_MAP_TYPE_LRU_PERCPU_HASH, "lru_percpu_hash"},
    {BPF_MAP_TYPE_LPM_TRIE, "lpm_trie"},
    {BPF_MAP_TYPE_ARRAY_OF_MAPS, "array_of_maps"},
    {BPF_MAP_TYPE_HASH_OF_MAPS, "hash_of_maps"},
    {BPF_MAP_TYPE_DEVMAP, "devmap"},
    {BPF_MAP_TYPE_DEVMAP_HASH, "devmap_hash"},
    {BPF_MAP_TYPE_PROG_ARRAY, "prog_array"},
};

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

// The kernel's "no such batch op" (ENOTSUPP, 524) or EOPNOTSUPP: fall back
// to one syscall per element.
bool BatchUnsupported(int err) { return err == 524 || err == EOPNOTSUPP; }

}  // namespace

const char *MapTypeName(uint32_t type) {
  for (const TypeName &t : kTypeNames) {
    if (t.type == type) return t.name;
  }
  return "other";
}

bool MapTypeFromName(const std::string &name, uint32_t *type) {
  for (const TypeName &t : kTypeNames) {
    if (name == t.name) {
      *type = t.type;
      return true;
    }
  }
  return false;
}

Napi::Function NativeMap::Define(Napi::Env env) {
  return DefineClass(env, "NativeMap",
                     {
                         InstanceAccessor<&NativeMap::GetFd>("fd"),
                         InstanceMethod<&NativeMap::Info>("info"),
                         InstanceMethod<&NativeMap::Lookup>("lookup"),
                         InstanceMethod<&NativeMap::Update>("update"),
                         InstanceMethod<&NativeMap::Delete>("delete"),
                         InstanceMethod<&NativeMap::UpdateBatch>("updateBatch"),
                         InstanceMethod<&NativeMap::DeleteBatch>("deleteBatch"),
                         InstanceMethod<&NativeMap::Keys>("keys"),
                         InstanceMethod<&NativeMap::Entries>("entries"),
                         InstanceMethod<&NativeMap::UpdateBatchAsync>("updateBatchAsync"),
                         InstanceMethod<&NativeMap::WriteMmapped>("writeMmapped"),
                         InstanceMethod<&NativeMap::LookupBatch>("lookupBatch"),
                         InstanceMethod<&NativeMap::Pin>("pin"),
                         InstanceMethod<&NativeMap::Close>("close"),
                     });
}

NativeMap::NativeMap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<NativeMap>(info) {}

NativeMap::~NativeMap() {
  if (ownedFd_ >= 0) close(ownedFd_);
}

Napi::Object NativeMap::FromFd(Napi::Env env, int fd, const std::string &what) {
  Napi::Object obj = Data(env).mapClass.New({});
  NativeMap *self = Unwrap(obj);
  self->ownedFd_ = fd;  // owned from here on, also if ReadInfo throws
  self->closed_ = false;
  self->ReadInfo(env, fd, what);
  return obj;
}

Napi::Object NativeMap::FromObject(Napi::Env env, std::shared_ptr<ObjectState> owner,
                                   struct bpf_map *map) {
  Napi::Object obj = Data(env).mapClass.New({});
  NativeMap *self = Unwrap(obj);
  self->owner_ = std::move(owner);
  self->objectMap_ = map;
  self->closed_ = false;
  self->ReadInfo(env, bpf_map__fd(map), "map '" + std::string(bpf_map__name(map)) + "'");
  // libbpf's full name (the kernel keeps 15 characters).
  self->name_ = bpf_map__name(map);
  return obj;
}

void NativeMap::ReadInfo(Napi::Env env, int fd, const std::string &what) {
  struct bpf_map_info info;
  memset(&info, 0, sizeof(info));
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) Throw(env, errno, what + ": reading map info");
  name_ = info.name;
  type_ = info.type;
  keySize_ = info.key_size;
  valueSize_ = info.value_size;
  maxEntries_ = info.max_entries;
  flags_ = info.map_flags;
  id_ = info.id;
  perCpu_ = IsPerCpu(type_);
  valueBufferSize_ = valueSize_;
  if (perCpu_) {
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) Throw(env, cpus < 0 ? -cpus : EINVAL, "counting possible CPUs");
    valueBufferSize_ = static_cast<size_t>(cpus) * ((valueSize_ + 7) / 8 * 8);
  }
}

int NativeMap::Fd(Napi::Env env) const {
  if (closed_) throw MakeErrorRaw(env, EBADF, Label() + " is closed");
  if (owner_) {
    if (!owner_->open()) {
      throw MakeErrorRaw(env, EBADF, Label() + ": its object " + owner_->path + " is closed");
    }
    return bpf_map__fd(objectMap_);
  }
  return ownedFd_;
}

void NativeMap::CheckKey(Napi::Env env, size_t len, size_t count) const {
  if (len != keySize_ * count) {
    ThrowInvalid(env, Label() + ": key buffer is " + std::to_string(len) + " bytes, expected " +
                          (count == 1 ? std::to_string(keySize_)
                                      : std::to_string(count) + " x " + std::to_string(keySize_)));
  }
}

void NativeMap::CheckValue(Napi::Env env, size_t len, size_t count) const {
  if (len != valueBufferSize_ * count) {
    std::string expected = std::to_string(valueBufferSize_);
    if (count != 1) expected = std::to_string(count) + " x " + expected;
    if (perCpu_) expected += " (per-CPU: possible CPUs x round_up(" + std::to_string(valueSize_) + ", 8))";
    ThrowInvalid(env, Label() + ": value buffer is " + std::to_string(len) + " bytes, expected " +
                          expected);
  }
}

Napi::Value NativeMap::GetFd(const Napi::CallbackInfo &info) {
  if (closed_ || (owner_ && !owner_->open())) return Napi::Number::New(info.Env(), -1);
  return Napi::Number::New(info.Env(), owner_ ? bpf_map__fd(objectMap_) : ownedFd_);
}

Napi::Value NativeMap::Info(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name_);
  o.Set("type", MapTypeName(type_));
  o.Set("keySize", keySize_);
  o.Set("valueSize", valueSize_);
  o.Set("maxEntries", maxEntries_);
  o.Set("flags", flags_);
  o.Set("id", id_);
  o.Set("perCpu", perCpu_);
  o.Set("valueBufferSize", static_cast<double>(valueBufferSize_));
  return o;
}

Napi::Value NativeMap::Lookup(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  Napi::Buffer<uint8_t> key = ArgBufferNamed(ArgAt(info, 0), [this] { return Label() + ": key"; });
  CheckKey(env, key.Length());
  Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, valueBufferSize_);
  if (bpf_map_lookup_elem(fd, key.Data(), value.Data()) != 0) {
    if (errno == ENOENT) return env.Null();
    Throw(env, errno, Label() + ": lookup");
  }
  return value;
}

Napi::Value NativeMap::Update(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  Napi::Buffer<uint8_t> key = ArgBufferNamed(ArgAt(info, 0), [this] { return Label() + ": key"; });
  Napi::Buffer<uint8_t> value = ArgBufferNamed(ArgAt(info, 1), [this] { return Label() + ": value"; });
  uint64_t flags = BPF_ANY;
  if (!IsAbsent(ArgAt(info, 2))) {
    flags = ArgIntNamed(ArgAt(info, 2), [this] { return Label() + ": flags"; }, 0, UINT32_MAX);
  }
  CheckKey(env, key.Length());
  CheckValue(env, value.Length());
  if (bpf_map_update_elem(fd, key.Data(), value.Data(), flags) != 0) {
    Throw(env, errno, Label() + ": update");
  }
  return env.Undefined();
}

Napi::Value NativeMap::Delete(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  Napi::Buffer<uint8_t> key = ArgBufferNamed(ArgAt(info, 0), [this] { return Label() + ": key"; });
  CheckKey(env, key.Length());
  if (bpf_map_delete_elem(fd, key.Data()) != 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    Throw(env, errno, Label() + ": delete");
  }
  return Napi::Boolean::New(env, true);
}

NativeMap::BatchArgs NativeMap::BatchArguments(const Napi::CallbackInfo &info) const {
  Napi::Env env = info.Env();
  BatchArgs a{ArgBufferNamed(ArgAt(info, 0), [this] { return Label() + ": keys"; }),
              ArgBufferNamed(ArgAt(info, 1), [this] { return Label() + ": values"; }),
              static_cast<uint32_t>(ArgInt(ArgAt(info, 2), Label() + ": count", 0, UINT32_MAX)),
              static_cast<uint64_t>(OptInt(ArgAt(info, 3), Label() + ": flags", 0, UINT32_MAX, BPF_ANY))};
  CheckKey(env, a.keys.Length(), a.count);
  CheckValue(env, a.values.Length(), a.count);
  return a;
}

Napi::Value NativeMap::UpdateBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  auto [keys, values, count, flags] = BatchArguments(info);
  if (count == 0) return Napi::Number::New(env, 0);

  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
  uint32_t done = count;
  if (bpf_map_update_batch(fd, keys.Data(), values.Data(), &done, &opts) == 0) {
    return Napi::Number::New(env, done);
  }
  int err = errno;
  if (!BatchUnsupported(err)) {
    Throw(env, err, Label() + ": batch update stopped after " + std::to_string(done) + " of " +
                        std::to_string(count));
  }
  for (uint32_t i = 0; i < count; i++) {
    if (bpf_map_update_elem(fd, keys.Data() + i * keySize_, values.Data() + i * valueBufferSize_,
                            flags) != 0) {
      Throw(env, errno, Label() + ": batch update stopped after " + std::to_string(i) + " of " +
                            std::to_string(count));
    }
  }
  return Napi::Number::New(env, count);
}

namespace {

// One batched update on a libuv worker thread. For map-in-map the kernel
// waits an RCU grace period (~12 ms here) after the batch so userspace
// knows no program still sees the replaced inner maps; off the JS thread,
// that wait blocks nothing. Works on its own dup of the fd.
class UpdateBatchWorker : public Napi::AsyncWorker {
 public:
  UpdateBatchWorker(Napi::Env env, int fd, std::string label, std::vector<uint8_t> keys, std::vector<uint8_t> values,
                    uint32_t count, uint32_t keySize, size_t valueSize, uint64_t flags)
      : Napi::AsyncWorker(env, "pharos.updateBatchAsync"), fd_(fd), label_(std::move(label)), keys_(std::move(keys)),
        values_(std::move(values)), count_(count), keySize_(keySize), valueSize_(valueSize), flags_(flags), deferred_(env) {}
  ~UpdateBatchWorker() override {
    if (fd_ >= 0) close(fd_);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags_);
    uint32_t done = count_;
    if (bpf_map_update_batch(fd_, keys_.data(), values_.data(), &done, &opts) == 0) {
      done_ = done;
      return;
    }
    err_ = errno;
    done_ = done;
    if (!BatchUnsupported(err_)) return;
    err_ = 0;
    for (uint32_t i = 0; i < count_; i++) {
      if (bpf_map_update_elem(fd_, keys_.data() + i * keySize_, values_.data() + i * valueSize_, flags_) != 0) {
        err_ = errno;
        done_ = i;
        return;
      }
    }
    done_ = count_;
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      deferred_.Reject(MakeErrorRaw(env, err_, label_ + ": batch update stopped after " + std::to_string(done_) + " of " +
                                                   std::to_string(count_) + ": " + strerror(err_)).Value());
    } else {
      deferred_.Resolve(Napi::Number::New(env, done_));
    }
  }

 private:
  int fd_;
  std::string label_;
  std::vector<uint8_t> keys_, values_;
  uint32_t count_, keySize_;
  size_t valueSize_;
  uint64_t flags_;
  uint32_t done_ = 0;
  int err_ = 0;
  Napi::Promise::Deferred deferred_;
};

}  // namespace

// writeMmapped(values): every value of a BPF_F_MMAPABLE array at once, by
// mmap and memcpy (a fresh Maglev table: one copy instead of a syscall that
// copies element by element, ~0.2 ms for 511 elements). `values` is
// maxEntries × valueSize bytes; only for maps nothing reads yet or whose
// readers tolerate a torn update.
Napi::Value NativeMap::WriteMmapped(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  Napi::Buffer<uint8_t> values = ArgBufferNamed(ArgAt(info, 0), [this] { return Label() + ": values"; });
  if (type_ != BPF_MAP_TYPE_ARRAY || !(flags_ & BPF_F_MMAPABLE)) {
    ThrowInvalid(env, Label() + ": writeMmapped needs an array created with BPF_F_MMAPABLE");
  }
  size_t size = static_cast<size_t>(maxEntries_) * ((valueSize_ + 7) / 8 * 8);
  if (values.Length() != size) {
    ThrowInvalid(env, Label() + ": writeMmapped: " + std::to_string(values.Length()) + " bytes, the array holds " + std::to_string(size));
  }
  long page = sysconf(_SC_PAGESIZE);
  size_t len = (size + page - 1) / page * page;
  void *mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mem == MAP_FAILED) Throw(env, errno, Label() + ": mmap");
  memcpy(mem, values.Data(), size);
  munmap(mem, len);
  return env.Undefined();
}

// updateBatchAsync(keys, values, count, flags?) -> Promise<number written>; rejects naming how far it got.
Napi::Value NativeMap::UpdateBatchAsync(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  auto [keys, values, count, flags] = BatchArguments(info);
  int dupFd = dup(fd);
  if (dupFd < 0) Throw(env, errno, Label() + ": dup for an async batch update");
  auto *worker = new UpdateBatchWorker(env, dupFd, Label(), std::vector<uint8_t>(keys.Data(), keys.Data() + keys.Length()),
                                       std::vector<uint8_t>(values.Data(), values.Data() + values.Length()), count, keySize_,
                                       valueBufferSize_, flags);
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // deletes itself when done
  return promise;
}

Napi::Value NativeMap::DeleteBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  Napi::Buffer<uint8_t> keys = ArgBufferNamed(ArgAt(info, 0), [this] { return Label() + ": keys"; });
  uint32_t count = ArgInt(ArgAt(info, 1), Label() + ": count", 0, UINT32_MAX);
  CheckKey(env, keys.Length(), count);

  // The kernel stops a batch at the first absent key: skip it and go on, so
  // the result is "how many of these keys were present and are now gone".
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  uint32_t deleted = 0, pos = 0;
  bool batchWorks = true;
  while (pos < count) {
    if (batchWorks) {
      uint32_t n = count - pos;
      if (bpf_map_delete_batch(fd, keys.Data() + pos * keySize_, &n, &opts) == 0) {
        deleted += n;
        break;
      }
      int err = errno;
      if (BatchUnsupported(err)) {
        batchWorks = false;
        continue;
      }
      if (err != ENOENT) {
        Throw(env, err, Label() + ": batch delete stopped after " + std::to_string(deleted) +
                            " deleted");
      }
      deleted += n;
      pos += n + 1;  // n deleted, then the absent one
      continue;
    }
    if (bpf_map_delete_elem(fd, keys.Data() + pos * keySize_) == 0) {
      deleted++;
    } else if (errno != ENOENT) {
      Throw(env, errno, Label() + ": batch delete stopped after " + std::to_string(deleted) +
                            " deleted");
    }
    pos++;
  }
  return Napi::Number::New(env, deleted);
}

// Every key, by BPF_MAP_GET_NEXT_KEY; bounded in case the map churns.
static int WalkKeys(int fd, uint32_t keySize, uint32_t maxEntries, std::vector<uint8_t> *out,
                    uint32_t *count) {
  std::vector<uint8_t> prev(keySize), next(keySize);
  const uint64_t bound = static_cast<uint64_t>(maxEntries) * 2 + 16;
  bool first = true;
  *count = 0;
  for (uint64_t i = 0; i < bound; i++) {
    if (bpf_map_get_next_key(fd, first ? nullptr : prev.data(), next.data()) != 0) {
      return errno == ENOENT ? 0 : errno;
    }
    out->insert(out->end(), next.begin(), next.end());
    (*count)++;
    prev.swap(next);
    first = false;
  }
  return 0;
}

Napi::Value NativeMap::Keys(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  std::vector<uint8_t> keys;
  uint32_t count = 0;
  int err = WalkKeys(fd, keySize_, maxEntries_, &keys, &count);
  if (err != 0) Throw(env, err, Label() + ": iterating keys");
  Napi::Object out = Napi::Object::New(env);
  out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), keys.size()));
  out.Set("count", count);
  return out;
}

Napi::Value NativeMap::Entries(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  std::vector<uint8_t> keys, values;
  uint32_t total = 0;

  // Batch lookup: the token is a bucket index (hash) or a key (array), so
  // room for the larger of the two. ENOSPC means a hash bucket holds more
  // than `chunk` entries: grow and retry. The last call ends with ENOENT
  // while still returning entries.
  uint32_t chunk = maxEntries_ < 256 ? (maxEntries_ == 0 ? 1 : maxEntries_) : 256;
  std::vector<uint8_t> inBatch(keySize_ + 8), outBatch(keySize_ + 8);
  bool first = true, batchWorks = true;
  const uint64_t bound = static_cast<uint64_t>(maxEntries_) + 64;
  for (uint64_t iter = 0; iter < bound; iter++) {
    std::vector<uint8_t> k(static_cast<size_t>(chunk) * keySize_),
        v(static_cast<size_t>(chunk) * valueBufferSize_);
    uint32_t n = chunk;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int rc = bpf_map_lookup_batch(fd, first ? nullptr : inBatch.data(), outBatch.data(), k.data(),
                                  v.data(), &n, &opts);
    int err = rc == 0 ? 0 : errno;
    if (err != 0 && err != ENOENT) {
      if (first && BatchUnsupported(err)) {
        batchWorks = false;
        break;
      }
      if (err == ENOSPC && chunk < (1u << 20)) {
        chunk *= 2;
        continue;
      }
      Throw(env, err, Label() + ": batch lookup");
    }
    keys.insert(keys.end(), k.begin(), k.begin() + static_cast<size_t>(n) * keySize_);
    values.insert(values.end(), v.begin(), v.begin() + static_cast<size_t>(n) * valueBufferSize_);
    total += n;
    if (err == ENOENT) break;
    inBatch = outBatch;
    first = false;
  }

  if (!batchWorks) {
    // Key walk, then one lookup per key (a key deleted meanwhile is skipped).
    std::vector<uint8_t> walked;
    uint32_t count = 0;
    int err = WalkKeys(fd, keySize_, maxEntries_, &walked, &count);
    if (err != 0) Throw(env, err, Label() + ": iterating keys");
    std::vector<uint8_t> v(valueBufferSize_);
    for (uint32_t i = 0; i < count; i++) {
      const uint8_t *key = walked.data() + static_cast<size_t>(i) * keySize_;
      if (bpf_map_lookup_elem(fd, key, v.data()) != 0) {
        if (errno == ENOENT) continue;
        Throw(env, errno, Label() + ": lookup while iterating");
      }
      keys.insert(keys.end(), key, key + keySize_);
      values.insert(values.end(), v.begin(), v.end());
      total++;
    }
  }

  Napi::Object out = Napi::Object::New(env);
  out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), keys.size()));
  out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), values.size()));
  out.Set("count", total);
  return out;
}

// lookupBatch(cursor, first, keys, values): one BPF_MAP_LOOKUP_BATCH into the
// caller's buffers, as many entries as both hold. Big maps are then read in
// chunks of a size the caller picks, with no copy and no allocation here, and
// the caller may yield between chunks (reading a 131,072-slot per-CPU array
// in one call blocks for ~50 ms). `cursor` (keySize + 8 bytes: a key for
// arrays, a bucket index for hashes) is read unless `first`, and rewritten
// with where the next call goes on; the kernel reads it before writing it.
// Returns { count, done }; done once the map is exhausted (ENOENT).
Napi::Value NativeMap::LookupBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  Napi::Buffer<uint8_t> cursor =
      ArgBufferNamed(ArgAt(info, 0), [this] { return Label() + ": lookupBatch cursor"; });
  bool first = ArgAt(info, 1).ToBoolean().Value();
  Napi::Buffer<uint8_t> keys =
      ArgBufferNamed(ArgAt(info, 2), [this] { return Label() + ": lookupBatch keys"; });
  Napi::Buffer<uint8_t> values =
      ArgBufferNamed(ArgAt(info, 3), [this] { return Label() + ": lookupBatch values"; });
  if (cursor.Length() < keySize_ + 8) {
    ThrowInvalid(env, Label() + ": lookupBatch cursor is " + std::to_string(cursor.Length()) +
                          " bytes, needs " + std::to_string(keySize_ + 8));
  }
  size_t room = std::min(keys.Length() / keySize_, values.Length() / valueBufferSize_);
  if (room == 0 || room > UINT32_MAX) {
    ThrowInvalid(env, Label() + ": lookupBatch buffers must hold 1 to 2^32-1 entries (key " +
                          std::to_string(keySize_) + " bytes, value " +
                          std::to_string(valueBufferSize_) + ")");
  }
  uint32_t n = static_cast<uint32_t>(room);
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  int rc = bpf_map_lookup_batch(fd, first ? nullptr : cursor.Data(), cursor.Data(), keys.Data(),
                                values.Data(), &n, &opts);
  int err = rc == 0 ? 0 : errno;
  if (err != 0 && err != ENOENT) Throw(env, err, Label() + ": batch lookup");
  Napi::Object out = Napi::Object::New(env);
  out.Set("count", n);
  out.Set("done", err == ENOENT);
  return out;
}

Napi::Value NativeMap::Pin(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = Fd(env);
  std::string path = ArgString(ArgAt(info, 0), Label() + ": pin path");
  if (bpf_obj_pin(fd, path.c_str()) != 0) Throw(env, errno, Label() + ": pinning at " + path);
  return env.Undefined();
}

Napi::Value NativeMap::Close(const Napi::CallbackInfo &info) {
  // Idempotent. A map borrowed from an object only lets go of the object.
  if (ownedFd_ >= 0) close(ownedFd_);
  ownedFd_ = -1;
  owner_.reset();
  objectMap_ = nullptr;
  closed_ = true;
  return info.Env().Undefined();
}

}  // namespace pharos
