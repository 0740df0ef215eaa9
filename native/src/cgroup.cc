// cgroup v2 attachment through BPF links (bpf_link_create), pinned on a
// bpffs so they outlive the agent: a restarted agent swaps the program in
// place with bpf_link_update (no moment without a program), and removing the
// pin after bpf_link_detach takes it off. Links attach alongside any other
// program on the cgroup (multi-attach), never replacing someone else's.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace pharos {

namespace {

struct AttachName {
  const char *name;
  enum bpf_attach_type type;
};

// The sock_addr hooks pharos uses (names as in the SEC("cgroup/...") of the programs).
const AttachName kAttachTypes[] = {
    {"connect4", BPF_CGROUP_INET4_CONNECT},       {"connect6", BPF_CGROUP_INET6_CONNECT},
    {"sendmsg4", BPF_CGROUP_UDP4_SENDMSG},        {"sendmsg6", BPF_CGROUP_UDP6_SENDMSG},
    {"recvmsg4", BPF_CGROUP_UDP4_RECVMSG},        {"recvmsg6", BPF_CGROUP_UDP6_RECVMSG},
    {"getpeername4", BPF_CGROUP_INET4_GETPEERNAME}, {"getpeername6", BPF_CGROUP_INET6_GETPEERNAME},
};

enum bpf_attach_type ArgAttachType(const Napi::Value &v, const std::string &fn) {
  std::string name = ArgString(v, fn + ": attachType");
  for (const AttachName &a : kAttachTypes) {
    if (name == a.name) return a.type;
  }
  std::string known;
  for (const AttachName &a : kAttachTypes) known += (known.empty() ? "" : ", ") + std::string(a.name);
  ThrowInvalid(v.Env(), fn + ": attachType must be one of " + known + ", got '" + name + "'");
}

// Closes an fd on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

int OpenCgroup(Napi::Env env, const std::string &path, uint64_t *id) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) Throw(env, errno, "opening cgroup " + path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    Throw(env, err, "stat of cgroup " + path);
  }
  // On cgroup v2 (kernfs) the directory's inode number is the cgroup id a link reports.
  *id = st.st_ino;
  return fd;
}

bool Exists(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace

// cgroupLinkAttach(cgroupPath, progFd, attachType, pinPath) -> { replaced, linkId }
// When pinPath holds a link of the same hook on the same cgroup, its program
// is replaced atomically; a pinned link of another cgroup or hook is detached
// and a new link created and pinned.
Napi::Value CgroupLinkAttach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string cgroup = ArgString(ArgAt(info, 0), "cgroupLinkAttach: cgroupPath");
  int progFd = ArgInt(ArgAt(info, 1), "cgroupLinkAttach: progFd", 0, INT32_MAX);
  enum bpf_attach_type type = ArgAttachType(ArgAt(info, 2), "cgroupLinkAttach");
  std::string pin = ArgString(ArgAt(info, 3), "cgroupLinkAttach: pinPath");
  std::string what = "cgroup " + cgroup + " (" + ArgAt(info, 2).As<Napi::String>().Utf8Value() + ")";
  uint64_t cgId = 0;
  Fd cg;
  cg.fd = OpenCgroup(env, cgroup, &cgId);
  Napi::Object out = Napi::Object::New(env);

  if (Exists(pin)) {
    Fd link;
    link.fd = bpf_obj_get(pin.c_str());
    if (link.fd < 0) Throw(env, errno, "opening pinned link " + pin);
    struct bpf_link_info li;
    memset(&li, 0, sizeof(li));
    uint32_t len = sizeof(li);
    if (bpf_obj_get_info_by_fd(link.fd, &li, &len) != 0) Throw(env, errno, "reading pinned link " + pin);
    bool same = li.type == BPF_LINK_TYPE_CGROUP && li.cgroup.cgroup_id == cgId && li.cgroup.attach_type == type;
    if (same) {
      uint64_t mark = LogMark();
      int rc = bpf_link_update(link.fd, progFd, nullptr);
      if (rc == 0) {
        out.Set("replaced", true);
        out.Set("linkId", li.id);
        return out;
      }
      // A link whose cgroup went away (ENOLINK) is re-created below.
      if (rc != -ENOLINK) Throw(env, -rc, "replacing the program of link " + pin + " on " + what, mark);
    }
    // Another cgroup or hook (configuration changed), or a dead link: take it off.
    bpf_link_detach(link.fd);
    if (unlink(pin.c_str()) != 0 && errno != ENOENT) Throw(env, errno, "removing stale link pin " + pin);
  }

  uint64_t mark = LogMark();
  Fd link;
  link.fd = bpf_link_create(progFd, cg.fd, type, nullptr);
  if (link.fd < 0) Throw(env, -link.fd, "attaching to " + what, mark);
  if (bpf_obj_pin(link.fd, pin.c_str()) != 0) {
    int err = errno;
    bpf_link_detach(link.fd);
    Throw(env, err, "pinning the link of " + what + " at " + pin);
  }
  struct bpf_link_info li;
  memset(&li, 0, sizeof(li));
  uint32_t len = sizeof(li);
  out.Set("replaced", false);
  out.Set("linkId", bpf_obj_get_info_by_fd(link.fd, &li, &len) == 0 ? li.id : 0);
  return out;
}

// cgroupLinkDetach(pinPath) -> boolean: detaches and unpins; false when no pin was there.
Napi::Value CgroupLinkDetach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string pin = ArgString(ArgAt(info, 0), "cgroupLinkDetach: pinPath");
  if (!Exists(pin)) return Napi::Boolean::New(env, false);
  Fd link;
  link.fd = bpf_obj_get(pin.c_str());
  if (link.fd < 0) Throw(env, errno, "opening pinned link " + pin);
  uint64_t mark = LogMark();
  int rc = bpf_link_detach(link.fd);
  // ENOLINK: already detached (its cgroup was removed).
  if (rc != 0 && rc != -ENOLINK) Throw(env, -rc, "detaching link " + pin, mark);
  if (unlink(pin.c_str()) != 0 && errno != ENOENT) Throw(env, errno, "removing link pin " + pin);
  return Napi::Boolean::New(env, true);
}

// cgroupQuery(cgroupPath, attachType) -> program ids attached directly to that cgroup (not inherited).
Napi::Value CgroupQuery(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string cgroup = ArgString(ArgAt(info, 0), "cgroupQuery: cgroupPath");
  enum bpf_attach_type type = ArgAttachType(ArgAt(info, 1), "cgroupQuery");
  uint64_t cgId = 0;
  Fd cg;
  cg.fd = OpenCgroup(env, cgroup, &cgId);
  uint32_t ids[64];
  uint32_t count = 64;
  uint32_t flags = 0;
  uint64_t mark = LogMark();
  int rc = bpf_prog_query(cg.fd, type, 0, &flags, ids, &count);
  if (rc != 0) Throw(env, -rc, "querying programs on cgroup " + cgroup, mark);
  Napi::Array out = Napi::Array::New(env, count);
  for (uint32_t i = 0; i < count; i++) out.Set(i, ids[i]);
  return out;
}

// netnsCookie(netns?) -> bigint: the cookie bpf_get_netns_cookie() returns
// for sockets of that network namespace (this thread's when absent), read
// with SO_NETNS_COOKIE (Linux 5.14) from a throwaway socket.
Napi::Value NetnsCookie(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::optional<std::string> netns = OptString(ArgAt(info, 0), "netnsCookie: netns");
  NetnsGuard guard;
  EnterNetns(env, guard, netns);
  Fd s;
  s.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s.fd < 0) Throw(env, errno, "netnsCookie: socket");
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(s.fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) Throw(env, errno, "netnsCookie: getsockopt(SO_NETNS_COOKIE)");
  return Napi::BigInt::New(env, cookie);
}

}  // namespace pharos
