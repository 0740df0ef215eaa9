// A libbpf bpf_object shared by its JS wrapper and the maps/programs taken
// from it: the object is closed by an explicit close() or when the last of
// them is garbage-collected, so a map handed out stays usable while its
// owner is unreachable from JS, and libbpf's fds are never closed twice.
#pragma once

#include <bpf/libbpf.h>

#include <string>

namespace pharos {

struct ObjectState {
  struct bpf_object *obj = nullptr;
  std::string path;
  bool loaded = false;
  // A loadAsync() is running on a worker thread: the object is the worker's until it ends,
  // and a close() asked meanwhile happens when it does.
  bool loading = false;
  bool closeWhenLoaded = false;

  ~ObjectState() { Close(); }
  void Close() {
    if (loading) {
      closeWhenLoaded = true;
      return;
    }
    if (obj != nullptr) bpf_object__close(obj);
    obj = nullptr;
  }
  bool open() const { return obj != nullptr; }
};

}  // namespace pharos
